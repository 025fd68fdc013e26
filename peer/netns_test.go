//go:build netns

package peer

// The real LAN test: network namespaces joined by a bridge, a mirror host,
// peer A and peer B, each process re-executed from this test binary inside
// its namespace (`ip netns exec NS <test binary>` with PEER_TEST_ROLE).
// Run it as root with `go test -tags netns ./peer`. Nothing
// runs, and nothing is broadcast, in the host's namespace: the parent only
// creates and deletes namespaces and reads files.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
)

// lan is the test network: a bridge in a "switch" namespace and one
// namespace per host, each with a veth into the bridge.
type lan struct {
	prefix string            // "pk-<pid>-"
	addrs  map[string]string // host → IPv4 address
	exe    string
	hostNS string // this process's network namespace, which roles refuse to run in
}

// Hosts of the test LAN and their addresses (inside our namespaces only).
var lanHosts = []struct{ name, addr string }{
	{"m", "10.250.0.1"}, // the mirror
	{"a", "10.250.0.2"}, // peer A
	{"b", "10.250.0.3"}, // peer B, the client
}

const (
	mirrorPort = 8080
	lanMask    = "/24"
)

func requireNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the LAN test creates network namespaces: run it as root (go test -tags netns ./peer)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the LAN test needs ip(8) from iproute2:", err)
	}
}

// newLAN creates the namespaces, the bridge and the veths, and deletes
// them all when the test ends, whatever happened.
func newLAN(t testing.TB) *lan {
	requireNetns(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	l := &lan{prefix: fmt.Sprintf("pk-%d-", os.Getpid()), addrs: map[string]string{}, exe: exe, hostNS: hostNS}
	sw := l.ns("sw")
	names := []string{sw}
	for _, h := range lanHosts {
		names = append(names, l.ns(h.name))
	}
	t.Cleanup(func() {
		for _, ns := range names {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	for _, ns := range names {
		ip(t, "netns", "add", ns)
	}
	ip(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", sw, "link", "set", "br0", "up")
	for i, h := range lanHosts {
		ns, port := l.ns(h.name), fmt.Sprintf("p%d", i)
		// Both ends are created inside our namespaces, never in the host's.
		ip(t, "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw)
		ip(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", ns, "addr", "add", h.addr+lanMask, "brd", "+", "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
		l.addrs[h.name] = h.addr
	}
	return l
}

func (l *lan) ns(host string) string { return l.prefix + host }

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// proc is a role running inside a namespace.
type proc struct {
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	stderr *bytes.Buffer
	done   chan struct{}
}

// command prepares the test binary in role inside host's namespace.
func (l *lan) command(host, role string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command("ip", "netns", "exec", l.ns(host), l.exe)
	cmd.Env = childEnv(role, append(env, netnsEnv("HOST", l.hostNS))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// start runs a long-lived role and waits (bounded) for its "ready" line.
// It stops when its stdin closes: at stop, or when the test ends.
func (l *lan) start(t testing.TB, host, role string, env ...string) *proc {
	t.Helper()
	cmd, stderr := l.command(host, role, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: in, stderr: stderr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			p.stop(t)
			t.Fatalf("%s in %s did not start: %q\n%s", role, host, line, stderr)
		}
	case <-time.After(20 * time.Second):
		p.stop(t)
		t.Fatalf("%s in %s: not ready after 20s\n%s", role, host, stderr)
	}
	return p
}

// stop closes the role's stdin and waits for it to exit (killing it after
// a bound).
func (p *proc) stop(t testing.TB) {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%v did not stop on its own", p.cmd.Args)
	}
}

// run runs a role to completion and returns its stdout.
func (l *lan) run(t testing.TB, host, role string, env ...string) []byte {
	t.Helper()
	cmd, stderr := l.command(host, role, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", role, host, err, stderr)
	}
	return out
}

// fetched is one line of the fetch role's output.
type fetched struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Origin string `json:"origin"`
}

// fixture writes the blobs to the mirror directory and to A's cache, and
// the wants to a file for the fetch role.
type fixture struct {
	mirrorDir, cacheA, wantsFile, mirrorLog, hostileLog string
	wants                                               []fetch.Want
}

func newFixture(t testing.TB, sizes ...int) *fixture {
	dir := t.TempDir()
	f := &fixture{
		mirrorDir: filepath.Join(dir, "mirror"), cacheA: filepath.Join(dir, "cache-a"),
		wantsFile: filepath.Join(dir, "wants.json"), mirrorLog: filepath.Join(dir, "mirror.log"),
		hostileLog: filepath.Join(dir, "hostile.log"),
	}
	os.MkdirAll(filepath.Join(f.mirrorDir, "packages"), 0o755)
	os.MkdirAll(f.cacheA, 0o755)
	cache := &fetch.Cache{Dir: f.cacheA}
	for i, n := range sizes {
		b, w := testBlob(fmt.Sprintf("pkg%d", i), n, uint64(i+1))
		f.wants = append(f.wants, w)
		must(t, os.WriteFile(filepath.Join(f.mirrorDir, w.Path), b, 0o644))
		must(t, os.WriteFile(cache.Path(w.Digest), b, 0o644))
	}
	data, err := json.Marshal(f.wants)
	must(t, err)
	must(t, os.WriteFile(f.wantsFile, data, 0o644))
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// packageRequests counts the archive requests in a request log.
func packageRequests(t testing.TB, log string) int {
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "/packages/")
}

// fetchInB runs a fetch in B into a fresh cache and returns what it
// reported and the cache, checked: exactly the wanted blobs, each hashing
// to its name.
func (l *lan) fetchInB(t *testing.T, f *fixture) ([]fetched, *fetch.Cache) {
	t.Helper()
	cache := &fetch.Cache{Dir: t.TempDir()}
	out := l.run(t, "b", "fetch", netnsEnv("CACHE", cache.Dir), netnsEnv("WANTS", f.wantsFile),
		netnsEnv("MIRROR", fmt.Sprintf("http://%s:%d", l.addrs["m"], mirrorPort)))
	var got []fetched
	for line := range strings.Lines(string(out)) {
		var r fetched
		must(t, json.Unmarshal([]byte(line), &r))
		got = append(got, r)
	}
	if len(got) != len(f.wants) {
		t.Fatalf("fetch reported %d blobs, want %d:\n%s", len(got), len(f.wants), out)
	}
	checkCache(t, cache, f.wants)
	return got, cache
}

func TestNetnsLAN(t *testing.T) {
	l := newLAN(t)
	f := newFixture(t, 10_000, 300_000, 2_000_000)
	l.start(t, "m", "mirror", netnsEnv("DIR", f.mirrorDir), netnsEnv("LOG", f.mirrorLog))
	a := l.start(t, "a", "serve", netnsEnv("CACHE", f.cacheA))
	peerA := "peer " + l.addrs["a"] + ":9123"

	// 1. A serves: every archive comes from A, the mirror sees none.
	got, _ := l.fetchInB(t, f)
	for _, r := range got {
		if r.Source != peerA || r.Origin != l.addrs["a"]+":9123" {
			t.Errorf("%s came from %q (origin %q), want %q", r.Name, r.Source, r.Origin, peerA)
		}
	}
	if n := packageRequests(t, f.mirrorLog); n != 0 {
		t.Errorf("the mirror served %d archives while A was up", n)
	}

	// 2. A stops: the mirror serves everything.
	a.stop(t)
	got, _ = l.fetchInB(t, f)
	for _, r := range got {
		if !strings.HasPrefix(r.Source, "mirror ") {
			t.Errorf("%s came from %q with A down, want the mirror", r.Name, r.Source)
		}
	}
	if n := packageRequests(t, f.mirrorLog); n != len(f.wants) {
		t.Errorf("the mirror served %d archives, want %d", n, len(f.wants))
	}

	// 3. A hostile peer answers every query with wrong bytes: B converges
	// from the mirror, and its cache holds only the right bytes (checked
	// by fetchInB).
	l.start(t, "a", "hostile", netnsEnv("CACHE", f.cacheA), netnsEnv("LOG", f.hostileLog))
	got, _ = l.fetchInB(t, f)
	for _, r := range got {
		if !strings.HasPrefix(r.Source, "mirror ") {
			t.Errorf("%s came from %q with a hostile peer, want the mirror", r.Name, r.Source)
		}
	}
	if n := packageRequests(t, f.mirrorLog); n != 2*len(f.wants) {
		t.Errorf("the mirror served %d archives in all, want %d", n, 2*len(f.wants))
	}
	if n := strings.Count(readFile(t, f.hostileLog), "/blobs/"); n == 0 {
		t.Error("the hostile peer was never asked: the test proves nothing")
	}
}

func readFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// netnsEnv names the environment of the namespace roles.
func netnsEnv(key, value string) string { return "PEER_NETNS_" + key + "=" + value }

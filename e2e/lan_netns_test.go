//go:build netns

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLANPeers runs the real packets binary on three hosts in network
// namespaces joined by a bridge: a mirror, peer A and peer B. A applies from
// the mirror and serves; B applies the same state and must get every archive
// from A. Once A stops, a fresh machine on B falls back to the mirror.
// Nothing runs in the host's namespace; the namespaces are always deleted.
//
//	go test -tags netns -run TestLANPeers ./e2e    (root only)
func TestLANPeers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip")
	}
	packetsBin, err := exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	n := newLAN(t, ipPath)
	mirrorNS, a, b := n.host("m", "10.251.0.1"), n.host("a", "10.251.0.2"), n.host("b", "10.251.0.3")

	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	run := func(ns string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), ipPath, append([]string{"netns", "exec", ns, packetsBin}, args...)...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: packets %s: %v\n%s%s", ns, strings.Join(args, " "), err, out.String(), stderr.String())
		}
		return out.String()
	}
	// The repository, built and signed by an author.
	run(a, "key", "generate", "--out", filepath.Join(work, "key"))
	for _, src := range []string{"libgreet", "hello-1.0.0", "tree-lite"} {
		run(a, "build", filepath.Join("..", "examples", "packages", src), "-o", filepath.Join(repo, "packages", src+".tar.zst"))
	}
	run(a, "repo", "index", repo, "--key", filepath.Join(work, "key.key"))

	// The mirror host serves it, logging every request.
	urlFile := filepath.Join(work, "url")
	mirrorLog := filepath.Join(work, "mirror.log")
	logf, err := os.Create(mirrorLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv := exec.Command(ipPath, "netns", "exec", mirrorNS, packetsBin, "-v", "repo", "serve", repo, "--listen", "10.251.0.1:8080", "--url-file", urlFile)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitFor(t, func() bool { _, err := os.Stat(urlFile); return err == nil })

	machine := func(name string) string {
		root := filepath.Join(work, name)
		mustWriteFile(t, filepath.Join(root, "etc/packets/config.toml"), "[peer]\nenabled = true\nwindow = \"300ms\"\n")
		mustWriteFile(t, filepath.Join(root, "etc/packets/state.hcl"), "package \"hello\" {}\npackage \"tree-lite\" {}\n")
		key, _ := os.ReadFile(filepath.Join(work, "key.pub"))
		mustWriteFile(t, filepath.Join(root, "etc/packets/keys/key.pub"), string(key))
		return root
	}
	rootA, rootB, rootC := machine("a"), machine("b"), machine("c")

	// A: from the mirror, then serve.
	run(a, "--root", rootA, "sync", "http://10.251.0.1:8080")
	assertSources(t, run(a, "--root", rootA, "apply", "--yes", "--json"), "mirror http://10.251.0.1:8080")
	archives := mirrorRequests(t, mirrorLog)
	run(a, "--root", rootA, "serve", "init")
	t.Cleanup(func() { exec.Command(ipPath, "netns", "exec", a, packetsBin, "--root", rootA, "serve", "stop").Run() })

	// B: the same state; every archive comes from A, none from the mirror.
	run(b, "--root", rootB, "sync", "http://10.251.0.1:8080")
	assertSources(t, run(b, "--root", rootB, "apply", "--yes", "--json"), "peer 10.251.0.2:9123")
	if got := mirrorRequests(t, mirrorLog); got != archives {
		t.Errorf("the mirror served %d archive requests after B applied, want still %d", got, archives)
	}
	run(b, "--root", rootB, "verify")

	// A stops: a fresh machine falls back to the mirror.
	run(a, "--root", rootA, "serve", "stop")
	run(b, "--root", rootC, "sync", "http://10.251.0.1:8080")
	assertSources(t, run(b, "--root", rootC, "apply", "--yes", "--json"), "mirror http://10.251.0.1:8080")
}

// assertSources checks that every action of an apply --json document got
// its archive from want.
func assertSources(t *testing.T, out, want string) {
	t.Helper()
	var doc struct {
		Outcomes []struct{ Name, Source string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("apply --json: %v\n%s", err, out)
	}
	if len(doc.Outcomes) == 0 {
		t.Fatalf("apply --json: no outcomes\n%s", out)
	}
	for _, o := range doc.Outcomes {
		if o.Source != want {
			t.Errorf("%s came from %q, want %q", o.Name, o.Source, want)
		}
	}
}

// mirrorRequests counts archive downloads in the mirror's log.
func mirrorRequests(t testing.TB, log string) int {
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "path=/packages/")
}

type lan struct {
	t      testing.TB
	ip     string
	prefix string
	n      int
}

// newLAN makes a "switch" namespace holding a bridge; hosts join it with
// veth pairs. Everything is deleted when the test ends.
func newLAN(t testing.TB, ip string) *lan {
	l := &lan{t: t, ip: ip, prefix: fmt.Sprintf("pke%d", os.Getpid()%100000)}
	sw := l.prefix + "-sw"
	l.must("netns", "add", sw)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", sw).Run() })
	l.must("-n", sw, "link", "add", "br0", "type", "bridge")
	l.must("-n", sw, "link", "set", "br0", "up")
	return l
}

func (l *lan) host(name, addr string) string {
	ns := l.prefix + "-" + name
	l.n++
	l.must("netns", "add", ns)
	l.t.Cleanup(func() { exec.Command(l.ip, "netns", "del", ns).Run() })
	veth, peerEnd := fmt.Sprintf("v%d", l.n), fmt.Sprintf("p%d", l.n)
	l.must("-n", l.prefix+"-sw", "link", "add", veth, "type", "veth", "peer", "name", peerEnd, "netns", ns)
	l.must("-n", l.prefix+"-sw", "link", "set", veth, "master", "br0", "up")
	l.must("-n", ns, "addr", "add", addr+"/24", "brd", "+", "dev", peerEnd)
	l.must("-n", ns, "link", "set", peerEnd, "up")
	l.must("-n", ns, "link", "set", "lo", "up")
	return ns
}

func (l *lan) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(l.ip, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls cond for at most 10 s: for a server in another namespace to
// come up, where no readiness fd can be passed.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

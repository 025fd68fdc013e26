//go:build netns

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BenchmarkLANFleet: a mirror and four hosts in network namespaces joined
// by a bridge; every host syncs, runs the LAN daemon (when peering is on)
// and applies the same state, with the real packets binary. It reports how
// many copies of the archives the mirror served: "off" (no peering), "rolling"
// (peering on, the hosts one after another, as a fleet rollout goes) and
// "simultaneous" (peering on, all four at once: each host announces the
// downloads it starts, and the lowest address fetches while the others
// follow it). Root only:
//
//	go test -tags netns -run '^$' -bench LANFleet -benchtime 1x ./e2e
func BenchmarkLANFleet(b *testing.B) {
	ipPath, bin := fleetTools(b)
	for _, mode := range []string{"off", "rolling", "simultaneous"} {
		b.Run(mode, func(b *testing.B) {
			f := newFleet(b, ipPath, bin, 4)
			var copies float64
			for b.Loop() {
				copies = f.apply(b, mode)
			}
			b.ReportMetric(copies, "mirror-copies")
		})
	}
}

// TestLANFleetSimultaneous: four hosts apply the same state at the same
// moment, peering on; the mirror serves each archive once (the target is
// at most 1.3 copies), and every host ends with the packages.
func TestLANFleetSimultaneous(t *testing.T) {
	ipPath, bin := fleetTools(t)
	f := newFleet(t, ipPath, bin, 4)
	if copies := f.apply(t, "simultaneous"); copies > 1.3 {
		t.Errorf("the mirror served %.2f copies of the archives to four hosts applying at once, want at most 1.3", copies)
	}
	for i, ns := range f.hosts {
		f.run(t, ns, "--root", filepath.Join(f.work, fmt.Sprintf("r%d-%d", f.round, i)), "verify")
	}
}

// fleetTools returns the ip command and the packets binary, or skips.
func fleetTools(t testing.TB) (ip, bin string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip")
	}
	bin, err = exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	return ip, bin
}

type fleet struct {
	ip, bin, work, repo, mirrorLog string
	hosts                          []string // namespaces
	archives                       int
	round                          int
}

func newFleet(b testing.TB, ip, bin string, n int) *fleet {
	l := newLAN(b, ip)
	f := &fleet{ip: ip, bin: bin, work: b.TempDir()}
	mirrorNS := l.host("m", "10.252.0.1")
	for i := range n {
		f.hosts = append(f.hosts, l.host(fmt.Sprintf("h%d", i), fmt.Sprintf("10.252.0.%d", 10+i)))
	}
	f.repo = filepath.Join(f.work, "repo")
	f.run(b, f.hosts[0], "key", "generate", "--out", filepath.Join(f.work, "key"))
	for _, src := range []string{"libgreet", "hello-1.0.0", "tree-lite", "motd"} {
		f.run(b, f.hosts[0], "build", filepath.Join("..", "examples", "packages", src), "-o", filepath.Join(f.repo, "packages", src+".tar.zst"))
		f.archives++
	}
	f.run(b, f.hosts[0], "repo", "index", f.repo, "--key", filepath.Join(f.work, "key.key"))
	urlFile := filepath.Join(f.work, "url")
	f.mirrorLog = filepath.Join(f.work, "mirror.log")
	logf, err := os.Create(f.mirrorLog)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logf.Close() })
	srv := exec.Command(ip, "netns", "exec", mirrorNS, bin, "-v", "repo", "serve", f.repo, "--listen", "10.252.0.1:8080", "--url-file", urlFile)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitFor(b, func() bool { _, err := os.Stat(urlFile); return err == nil })
	return f
}

func (f *fleet) run(b testing.TB, ns string, args ...string) {
	b.Helper()
	if err := f.exec(ns, args...); err != nil {
		b.Fatal(err)
	}
}

// exec runs packets in namespace ns; safe from any goroutine.
func (f *fleet) exec(ns string, args ...string) error {
	cmd := exec.Command(f.ip, append([]string{"netns", "exec", ns, f.bin}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: packets %s: %v\n%s", ns, strings.Join(args, " "), err, out.String())
	}
	return nil
}

// apply gives every host a fresh machine, applies the state on all of them
// as mode says, and returns the copies of the archives the mirror served.
func (f *fleet) apply(b testing.TB, mode string) float64 {
	f.round++
	peering := mode != "off"
	key, err := os.ReadFile(filepath.Join(f.work, "key.pub"))
	if err != nil {
		b.Fatal(err)
	}
	roots := make([]string, len(f.hosts))
	for i, ns := range f.hosts {
		root := filepath.Join(f.work, fmt.Sprintf("r%d-%d", f.round, i))
		roots[i] = root
		mustWriteFile(b, filepath.Join(root, "etc/packets/config.toml"), fmt.Sprintf("[peer]\nenabled = %t\nwindow = \"300ms\"\n", peering))
		mustWriteFile(b, filepath.Join(root, "etc/packets/state.hcl"), "package \"hello\" {}\npackage \"tree-lite\" {}\npackage \"motd\" {}\n")
		mustWriteFile(b, filepath.Join(root, "etc/packets/keys/key.pub"), string(key))
		f.run(b, ns, "--root", root, "sync", "http://10.252.0.1:8080")
		if peering {
			f.run(b, ns, "--root", root, "serve", "init")
			b.Cleanup(func() { exec.Command(f.ip, "netns", "exec", ns, f.bin, "--root", root, "serve", "stop").Run() })
		}
	}
	before := mirrorRequests(b, f.mirrorLog)
	if mode == "simultaneous" {
		errs := make([]error, len(f.hosts))
		var wg sync.WaitGroup
		for i, ns := range f.hosts {
			wg.Go(func() { errs[i] = f.exec(ns, "--root", roots[i], "apply", "--yes") })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	} else {
		for i, ns := range f.hosts {
			f.run(b, ns, "--root", roots[i], "apply", "--yes")
		}
	}
	return float64(mirrorRequests(b, f.mirrorLog)-before) / float64(f.archives)
}

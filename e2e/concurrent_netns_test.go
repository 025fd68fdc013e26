//go:build netns

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConcurrentCommands runs writers side by side on one root, round after
// round: apply, install, remove, sync, serve init or serve stop, with a
// watch running all along. Every command either succeeds or fails saying
// another process holds the lock: never a panic, a busy or corrupt
// database. At the end apply converges and verify is clean. The commands
// run in a network namespace (serve listens there), except sync, which
// fetches from the test's loopback mirror.
//
//	go test -tags netns -run TestConcurrentCommands ./e2e    (root only)
func TestConcurrentCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip")
	}
	bin, err := exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	s := newSoak(t, bin)
	// Every archive the rounds need, cached: nothing in the namespace downloads.
	for _, st := range []string{s.state(false), s.state(true)} {
		s.writeState(st)
		s.mustRun("apply", "--yes")
	}
	mustWriteFile(t, filepath.Join(s.root, "etc/packets/config.toml"), "[peer]\nenabled = true\n")
	ns := newLAN(t, ipPath).host("c", "10.252.0.2")
	inNS := func(args ...string) *exec.Cmd {
		return exec.CommandContext(t.Context(), ipPath, append([]string{"netns", "exec", ns, bin, "--root", s.root}, args...)...)
	}
	t.Cleanup(func() { inNS("serve", "stop").Run() })

	watch := inNS("watch", "--debounce", "50ms")
	var watchOut bytes.Buffer
	watch.Stdout, watch.Stderr = &watchOut, &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })

	var mu sync.Mutex
	tally := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	rounds := 0
	for ; rounds < 30 && time.Now().Before(deadline); rounds++ {
		serve := "init"
		if rounds%2 == 1 {
			serve = "stop"
		}
		cmds := []*exec.Cmd{
			inNS("apply", "--yes", "--lock-timeout", "300ms"),
			inNS("install", "p07", "--yes", "--lock-timeout", "300ms"),
			inNS("remove", "p07", "--yes", "--lock-timeout", "300ms"),
			inNS("serve", serve),
			exec.CommandContext(t.Context(), bin, "--root", s.root, "sync"),
		}
		var wg sync.WaitGroup
		for _, cmd := range cmds {
			wg.Go(func() {
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				verdict := classify(err, out.String())
				mu.Lock()
				tally[verdict]++
				mu.Unlock()
				if verdict == "bad" {
					t.Errorf("round %d: %s: %v\n%s", rounds, strings.Join(cmd.Args, " "), err, out.String())
				}
			})
		}
		wg.Wait()
	}
	watch.Process.Signal(syscall.SIGTERM)
	watch.Wait()
	if classify(nil, watchOut.String()) == "bad" {
		t.Errorf("watch:\n%s", watchOut.String())
	}
	t.Logf("%d rounds of 5 commands beside a watch: %v", rounds, tally)

	inNS("serve", "stop").Run()
	s.writeState(s.state(true))
	s.mustRun("apply", "--yes")
	s.check(s.state(true))
}

// classify says how a command ended: "ok", "locked" (it failed saying
// another process holds the lock), "undeclared" (remove found nothing to
// remove) or "bad" (anything else, or output that
// betrays a panic or a busy or corrupt database).
func classify(err error, out string) string {
	for _, bad := range []string{"panic", "database is locked", "SQLITE_BUSY", "malformed", "corrupt"} {
		if strings.Contains(out, bad) {
			return "bad"
		}
	}
	switch {
	case err == nil:
		return "ok"
	case strings.Contains(out, "holds the lock"):
		return "locked"
	case strings.Contains(out, "nothing to remove"):
		return "undeclared" // remove ran before install, as it may
	}
	return "bad"
}

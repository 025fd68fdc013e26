package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// awaitTimeout bounds how long await waits for a condition a background
// process (the watcher) should bring about.
const awaitTimeout = 30 * time.Second

// await COND ARGS...: wait, polling, until a condition holds, for at most
// awaitTimeout. COND is installed NAME VERSION, not-installed NAME,
// exists PATH, or grep PATTERN FILE. It is how a script waits for a
// background process without fixed sleeps.
func cmdAwait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: await installed NAME VERSION | not-installed NAME | exists PATH | grep PATTERN FILE")
	}
	check := conditions(ts, args)
	deadline := time.Now().Add(awaitTimeout)
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("await %s: still not true after %s: %v", strings.Join(args, " "), awaitTimeout, err)
		}
		time.Sleep(delay)
	}
}

func conditions(ts *testscript.TestScript, args []string) func() error {
	switch {
	case args[0] == "installed" && len(args) == 3:
		return func() error { return isInstalled(ts, args[1], args[2]) }
	case args[0] == "not-installed" && len(args) == 2:
		return func() error { return isNotInstalled(ts, args[1]) }
	case args[0] == "exists" && len(args) == 2:
		return func() error {
			_, err := os.Lstat(ts.MkAbs(args[1]))
			return err
		}
	case args[0] == "grep" && len(args) == 3:
		re, err := regexp.Compile(args[1])
		ts.Check(err)
		return func() error {
			b, err := os.ReadFile(ts.MkAbs(args[2]))
			if err != nil {
				return err
			}
			if !re.Match(b) {
				return fmt.Errorf("no match for %q in %s", args[1], args[2])
			}
			return nil
		}
	}
	ts.Fatalf("await: unknown condition %q", strings.Join(args, " "))
	return nil
}

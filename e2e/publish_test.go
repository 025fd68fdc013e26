package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// run executes the packets binary (testscript puts it on $PATH) in the
// script's working directory and returns its exit status.
func run(ts *testscript.TestScript, stdout, stderr io.Writer, args ...string) int {
	cmd := exec.CommandContext(scriptContext(ts), "packets", args...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	ts.Check(err)
	return 0
}

// packets runs packets and fails the script unless it succeeds.
func packets(ts *testscript.TestScript, args ...string) {
	var out bytes.Buffer
	if code := run(ts, &out, &out, args...); code != 0 {
		ts.Fatalf("packets %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
}

// publish REPO SRC...: build each package source (a directory, relative to
// the script's work dir or to $EXAMPLES/packages) into REPO/packages, sign a
// new release with REPO.key (made on first use), and trust REPO.pub under
// $ROOT. It is what a package author does with packets build, key generate
// and repo index.
func cmdPublish(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: publish REPO [SRC...]")
	}
	repo := ts.MkAbs(args[0])
	key := repo + ".key"
	if _, err := os.Stat(key); err != nil {
		packets(ts, "key", "generate", "--out", repo)
	}
	for _, src := range args[1:] {
		dir := ts.MkAbs(src)
		if _, err := os.Stat(dir); err != nil {
			dir = filepath.Join(ts.Getenv("EXAMPLES"), "packages", src)
		}
		packets(ts, "build", dir, "-o", filepath.Join(repo, "packages", filepath.Base(src)+".tar.zst"))
	}
	packets(ts, "repo", "index", repo, "--key", key)
	keys := filepath.Join(ts.Getenv("ROOT"), "etc/packets/keys")
	ts.Check(os.MkdirAll(keys, 0o755))
	pub, err := os.ReadFile(repo + ".pub")
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(keys, filepath.Base(repo)+".pub"), pub, 0o644))
}

// exitcode N ARGS...: run packets ARGS and require exit status N
// (`! exec` cannot tell 2, "changes", from 1, an error). Its output becomes
// the script's stdout and stderr for the assertions that follow.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("usage: exitcode N ARGS...")
	}
	code := run(ts, ts.Stdout(), ts.Stderr(), args[1:]...)
	if code != want {
		ts.Fatalf("packets %s: exit status %d, want %d", strings.Join(args[1:], " "), code, want)
	}
}

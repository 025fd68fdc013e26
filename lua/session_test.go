package lua_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/lua"
)

func TestSessionRunsHooksInTurn(t *testing.T) {
	m := newMachine(t)
	var logs bytes.Buffer
	r := testRunner(quick)
	r.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := r.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	install := m.hook(`os.copy(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, "htop"))
print("installed", script)`)
	res, err := s.Run(t.Context(), install)
	if err != nil {
		t.Fatal(err)
	}
	want := lua.Result{Created: []string{"/usr/bin/htop"}, Output: "installed\tinstall.lua\n"}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("install (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), `msg="hook sandbox started" pid=`) {
		t.Errorf("log = %q, want the child's start", logs.String())
	}

	remove := m.hook(`assert(os.remove(path_join(packets_bin_dir, "htop")))`)
	remove.Script = "remove.lua"
	res, err = s.Run(t.Context(), remove)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lua.Result{Removed: []string{"/usr/bin/htop"}}, res); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := s.Run(t.Context(), install); err == nil || !strings.Contains(err.Error(), "session closed") {
		t.Errorf("Run after Close = %v, want session closed", err)
	}
}

// A hook error crosses the process boundary whole: package, script, line,
// message and sentinel.
func TestSessionHookErrors(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	tests := []struct {
		name, script string
		is           error
		want         string
	}{
		{"error", "local x = 1\nerror(\"boom\")", nil, "htop: install.lua:2: boom"},
		{"denied", "\npcall(io.open, '/etc/passwd', 'w')", lua.ErrDenied,
			"htop: install.lua:2: io.open: /etc/passwd is outside the hook's directories"},
		{"syntax", "local x = = 1", nil, "htop: install.lua:1: syntax error near '='"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(t.Context(), m.hook(tt.script))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
		})
	}
}

// A Go function the VM cannot interrupt (a pattern that backtracks within
// the caps) is stopped by killing the child; the next hook gets a new one.
func TestSessionKillsStuckChild(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, lua.Limits{Timeout: 300 * time.Millisecond})
	before := snapshot(t, m.root)
	_, err := s.Run(t.Context(), m.hook(`local i = string.find(("a"):rep(4000), ".-.-.-.-b")`))
	checkHookError(t, err, lua.ErrTimeout, "time limit exceeded (300ms)", 0)
	if _, err := s.Run(t.Context(), m.hook(`print(1)`)); err != nil {
		t.Errorf("Run after the kill: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, m.root)); diff != "" {
		t.Errorf("the machine changed (-before +after):\n%s", diff)
	}
}

// One allocation too large to wait for (a 512 MiB table.concat) hits the
// memory limit too: RLIMIT_AS makes the Go runtime abort the child.
func TestSessionMemoryLimitSingleAllocation(t *testing.T) {
	if raceBuild {
		t.Skip("no RLIMIT_AS under the race detector, which also copies 512 MiB for half a minute")
	}
	m := newMachine(t)
	s := startSession(t, lua.Limits{Timeout: 20 * time.Second, MemoryBytes: 64 << 20})
	_, err := s.Run(t.Context(), m.hook(`local t, x = {}, ("x"):rep(16 * 1024 * 1024)
for i = 1, 32 do t[i] = x end
local s = table.concat(t)
while true do end`))
	checkHookError(t, err, lua.ErrMemoryLimit, "memory limit exceeded (the sandbox process ran out of address space)", 0)
	if _, err := s.Run(t.Context(), m.hook(`print(1)`)); err != nil {
		t.Errorf("Run after the memory limit: %v", err)
	}
}

// The caller's context stops a running hook (an interrupted apply), and the
// next hook runs in a fresh child.
func TestSessionContext(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := s.Run(ctx, m.hook("while true do end"))
	checkHookError(t, err, context.DeadlineExceeded, "context deadline exceeded", 0)
	if _, err := s.Run(t.Context(), m.hook(`print(1)`)); err != nil {
		t.Errorf("Run after the cancellation: %v", err)
	}
}

// Hooks sent ahead run in the order they were sent, one after the other,
// whatever order their results are read in.
func TestSessionSendAhead(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	// Each hook copies a file only if the one before it did.
	hook := func(i int) lua.Hook {
		return m.hook(fmt.Sprintf(`local prev = path_join(packets_bin_dir, "h%d")
assert(%d == 0 or io.open(prev, "r"), "ran before hook %d")
assert(os.copy(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, "h%d")))`, i-1, i, i-1, i))
	}
	var sent []*lua.Pending
	for i := range 4 {
		sent = append(sent, s.Send(t.Context(), hook(i)))
	}
	for i := len(sent) - 1; i >= 0; i-- {
		res, err := sent[i].Wait(t.Context())
		if err != nil {
			t.Fatalf("hook %d: %v", i, err)
		}
		if want := []string{fmt.Sprintf("/usr/bin/h%d", i)}; !slices.Equal(res.Created, want) {
			t.Errorf("hook %d created %q, want %q", i, res.Created, want)
		}
	}
}

// The hooks sent behind one that gets its child killed (the time limit),
// written to it already or not, run in the next child, in order; so does
// one sent behind a hook whose caller gave up, unless its own caller gave
// up too.
func TestSessionSendAheadAfterKill(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, lua.Limits{Timeout: 300 * time.Millisecond})
	stuck := s.Send(t.Context(), m.hook(`local i = string.find(("a"):rep(4000), ".-.-.-.-b")`))
	var behind []*lua.Pending
	for i := range 3 {
		behind = append(behind, s.Send(t.Context(), m.hook(fmt.Sprintf(`print("next %d")`, i))))
	}
	_, err := stuck.Wait(t.Context())
	checkHookError(t, err, lua.ErrTimeout, "time limit exceeded (300ms)", 0)
	for i, p := range behind {
		if res, err := p.Wait(t.Context()); err != nil || res.Output != fmt.Sprintf("next %d\n", i) {
			t.Errorf("hook %d behind the killed one: %+v, %v", i, res, err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	loop := s.Send(ctx, m.hook("while true do end"))
	after := s.Send(ctx, m.hook(`print("behind")`))
	_, err = loop.Wait(ctx)
	checkHookError(t, err, context.DeadlineExceeded, "context deadline exceeded", 0)
	_, err = after.Wait(ctx)
	checkHookError(t, err, context.DeadlineExceeded, "context deadline exceeded", 0)
	if res, err := s.Run(t.Context(), m.hook(`print("after")`)); err != nil || res.Output != "after\n" {
		t.Errorf("Run after the cancellation: %+v, %v", res, err)
	}
}

// Claims: a path one package's hook created is protected from the hooks
// of other packages sent after it while the session is busy, also when the
// later hook was written to the child before the result it depends on was
// read, and in a child started after a kill; the package itself may
// replace it, and once it removes the path the claim goes. Once every hook
// sent has been read, the session forgets: the caller has recorded the
// paths by then, and a claim kept longer would outlive its package.
func TestSessionClaims(t *testing.T) {
	m := newMachine(t)
	m.write(t, "opt/packets/nano/data/bin/nano", "nano\n", 0o755)
	s := startSession(t, lua.Limits{Timeout: 300 * time.Millisecond})
	as := func(pkg, src string) lua.Hook {
		h := m.hook(src)
		if pkg == "nano" {
			h.Package, h.PackageDir, h.DataDir, h.Protected = "nano", "/opt/packets/nano", "/opt/packets/nano/data", nil
		}
		return h
	}
	const (
		take    = `assert(os.copy(path_join(data_dir, "bin/htop"), "/usr/bin/tool"))`
		steal   = `assert(os.copy(path_join(data_dir, "bin/nano"), "/usr/bin/tool"))`
		release = `assert(os.remove("/usr/bin/tool"))`
		stuck   = `local i = string.find(("a"):rep(4000), ".-.-.-.-b")`
	)
	htop := m.read(t, "opt/packets/htop/data/bin/htop")
	// batch sends hooks (package, script) one after another and reads
	// their results only then, as the install engine does.
	batch := func(hooks ...[2]string) []error {
		var sent []*lua.Pending
		for _, h := range hooks {
			sent = append(sent, s.Send(t.Context(), as(h[0], h[1])))
		}
		errs := make([]error, len(sent))
		for i, p := range sent {
			_, errs[i] = p.Wait(t.Context())
		}
		return errs
	}
	denied := func(err error) {
		t.Helper()
		var he *lua.HookError
		if !errors.As(err, &he) || he.Package != "nano" || !errors.Is(err, lua.ErrDenied) ||
			!strings.Contains(err.Error(), "os.copy: /usr/bin/tool belongs to another package") {
			t.Errorf("nano's hook: %v, want it denied /usr/bin/tool", err)
		}
	}
	content := func(want string) {
		t.Helper()
		if got := m.read(t, "usr/bin/tool"); got != want {
			t.Errorf("/usr/bin/tool = %q, want %q", got, want)
		}
	}

	errs := batch([2]string{"htop", take}, [2]string{"nano", steal}, [2]string{"htop", take})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("htop's hooks: %v, %v", errs[0], errs[2])
	}
	denied(errs[1])
	content(htop)

	// A kill starts a fresh child, which gets the claims.
	errs = batch([2]string{"htop", take}, [2]string{"htop", stuck}, [2]string{"nano", steal})
	if !errors.Is(errs[1], lua.ErrTimeout) {
		t.Fatalf("the stuck hook: %v", errs[1])
	}
	denied(errs[2])
	content(htop)

	// Removing the path releases it.
	errs = batch([2]string{"htop", take}, [2]string{"htop", release}, [2]string{"nano", steal})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("take, release, steal: %v", err)
	}
	content("nano\n")

	// Idle, the session forgets: installed.db protects recorded paths.
	if err := errors.Join(batch([2]string{"htop", take})...); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(batch([2]string{"nano", steal})...); err != nil {
		t.Errorf("nano after the session went idle: %v", err)
	}
	content("nano\n")
}

func TestStartRejectsNonChild(t *testing.T) {
	r := &lua.Runner{Command: []string{"/bin/sh", "-c", "echo hello; cat"}}
	if _, err := r.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "unexpected hello") {
		t.Errorf("Start = %v, want an unexpected hello", err)
	}
	r = &lua.Runner{Command: []string{"/bin/sh", "-c", "echo it broke >&2; exit 3"}}
	if _, err := r.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "it broke") {
		t.Errorf("Start = %v, want the child's stderr", err)
	}
}

// A child that answers garbage is killed, and the hook fails.
func TestSessionProtocolViolation(t *testing.T) {
	m := newMachine(t)
	r := &lua.Runner{Command: []string{"/bin/sh", "-c", `echo '{"packets_hook_child":3}'; read line; echo garbage; exec sleep 600`}}
	s, err := r.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run(t.Context(), m.hook("print(1)"))
	if err == nil || !strings.Contains(err.Error(), "htop: install.lua: decode hook result: invalid character") {
		t.Errorf("Run = %v, want a decode error", err)
	}
}

func TestStartMissingCommand(t *testing.T) {
	for _, cmd := range [][]string{nil, {"/nonexistent/packets"}} {
		r := &lua.Runner{Command: cmd}
		if _, err := r.Start(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "start hook sandbox: ") {
			t.Errorf("Start(%q) = %v, want a start error", cmd, err)
		}
	}
}

// parentEnv makes the test binary a parent that starts a session, says
// "ready" and waits to be killed.
const parentEnv = "PACKETS_LUA_TEST_PARENT"

func serveParent() int {
	//nolint:forbidigo // a helper process has no t.Context.
	s, err := testRunner(quick).Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until killed
	return 0
}

// The child dies with its parent (Pdeathsig), even when the parent is
// SIGKILLed and cannot clean up.
func TestChildDiesWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), parentEnv+"=1")
	stdin, err := parent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("parent said %q, %v", line, err)
	}
	child := childOf(t, parent.Process.Pid)
	pidfd, err := pidfdOpen(child)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", child, err)
	}
	defer syscall.Close(pidfd)

	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if !waitExit(t, pidfd, 10*time.Second) {
		t.Errorf("child %d still running 10s after its parent was killed", child)
	}
}

// childOf finds the only child of pid in /proc.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var found []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(string(b))[0])
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		t.Fatalf("children of %d: %v, want one", pid, found)
	}
	return found[0]
}

func pidfdOpen(pid int) (int, error) {
	const sysPidfdOpen = 434
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// waitExit waits until the process behind pidfd exits (the fd turns
// readable), or timeout.
func waitExit(t *testing.T, pidfd int, timeout time.Duration) bool {
	t.Helper()
	var set syscall.FdSet
	set.Bits[pidfd/64] |= 1 << (uint(pidfd) % 64)
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	for {
		n, err := syscall.Select(pidfd+1, &set, nil, nil, &tv)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("select: %v", err)
		}
		return n == 1
	}
}

// A child keeps the bin dir open from one hook to the next, but not a
// failure to open it (a bin dir made after a hook failed for its lack is
// found by the next one), and never a package dir: one replaced between
// two hooks is read anew.
func TestSessionReopensWhatItDoesNotKeep(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	h := m.hook(`assert(os.copy(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, options.name)))`)
	h.BinDir = "/usr/local/bin"
	h.Options = map[string]string{"name": "htop"}
	if _, err := s.Run(t.Context(), h); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("hook into a missing bin dir = %v, want no such file or directory", err)
	}
	if err := os.MkdirAll(m.path("usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(t.Context(), h); err != nil {
		t.Fatalf("hook once the bin dir exists: %v", err)
	}
	if got := m.read(t, "usr/local/bin/htop"); got != "#!/bin/sh\necho htop\n" {
		t.Errorf("usr/local/bin/htop = %q", got)
	}

	if err := os.Rename(m.path("opt/packets/htop"), m.path("opt/packets/htop.old")); err != nil {
		t.Fatal(err)
	}
	m.write(t, "opt/packets/htop/data/bin/htop", "new\n", 0o755)
	h.Options = map[string]string{"name": "htop-new"}
	if _, err := s.Run(t.Context(), h); err != nil {
		t.Fatalf("hook of the replaced package dir: %v", err)
	}
	if got := m.read(t, "usr/local/bin/htop-new"); got != "new\n" {
		t.Errorf("usr/local/bin/htop-new = %q, want the new package dir's file", got)
	}
}

// The hooks of one child share Lua's library functions but not the tables
// that hold them: what one hook changes in its environment, the next one
// does not see.
func TestSessionHooksDoNotShareTheirLibrary(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	vandal := m.hook(`
string.upper = nil; math.pi = 3; table.insert = nil; coroutine.wrap = nil
getmetatable("").__index = {}
_G.assert = nil; leaked = "yes"`)
	if _, err := s.Run(t.Context(), vandal); err != nil {
		t.Fatalf("first hook: %v", err)
	}
	check := m.hook(`
print(string.upper("ok"), ("x"):rep(2), math.pi > 3.14, type(table.insert), type(coroutine.wrap))
assert(leaked == nil, "a global of the hook before")`)
	res, err := s.Run(t.Context(), check)
	if err != nil {
		t.Fatalf("second hook: %v", err)
	}
	if want := "OK\txx\ttrue\tfunction\tfunction\n"; res.Output != want {
		t.Errorf("second hook printed %q, want %q", res.Output, want)
	}
}

// The owners set with SetOwners protect their paths from every other
// package's hooks, reach a child started after a kill, and change when set
// again.
func TestSessionOwners(t *testing.T) {
	m := newMachine(t)
	s := startSession(t, quick)
	s.SetOwners(map[string]string{"/usr/bin/vim": "vim", "/usr/bin/htop": "htop"})
	onto := func(target string) lua.Hook {
		h := m.hook(`assert(os.copy(path_join(data_dir, "bin/htop"), "` + target + `"))`)
		h.Protected = nil
		return h
	}
	if _, err := s.Run(t.Context(), onto("/usr/bin/vim")); !errors.Is(err, lua.ErrDenied) || !strings.Contains(err.Error(), "/usr/bin/vim belongs to another package") {
		t.Errorf("copy onto vim's path = %v, want denied", err)
	}
	if _, err := s.Run(t.Context(), onto("/usr/bin/htop")); err != nil {
		t.Errorf("copy onto its own package's path: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Run(ctx, m.hook(`while true do end`)); err == nil {
		t.Fatal("an endless hook under a cancelled context succeeded")
	}
	if _, err := s.Run(t.Context(), onto("/usr/bin/vim")); !errors.Is(err, lua.ErrDenied) {
		t.Errorf("after a kill, copy onto vim's path = %v, want denied", err)
	}

	s.SetOwners(map[string]string{})
	if _, err := s.Run(t.Context(), onto("/usr/bin/vim")); err != nil {
		t.Errorf("once vim owns nothing, copy onto its path: %v", err)
	}
	if got := m.read(t, "usr/bin/vim"); got != "#!/bin/sh\necho htop\n" {
		t.Errorf("usr/bin/vim = %q", got)
	}
}

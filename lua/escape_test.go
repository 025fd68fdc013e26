package lua_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/lua"
)

// escape is one attack of the corpus: it must fail with a clear error and
// change nothing anywhere.
type escape struct {
	name   string
	script string
	// child runs it through a Session, for attacks that need the process
	// boundary (loops, memory); the others run in-process.
	child  bool
	limits lua.Limits
	setup  func(t *testing.T, m *machine) // plants things before the snapshot
	is     error                          // the sentinel the error wraps, if any
	msg    string                         // in the error message
	line   int                            // the line reported, if known
}

var escapes = []escape{
	{name: "os.execute", script: `os.execute("touch /tmp/pwned")`,
		is: lua.ErrDenied, msg: "os.execute is not available in packets hooks", line: 1},
	{name: "io.popen", script: `local p = io.popen("id")`,
		is: lua.ErrDenied, msg: "io.popen is not available in packets hooks", line: 1},
	{name: "require os", script: "local x = 1\nlocal os = require \"os\"",
		is: lua.ErrDenied, msg: "require is not available in packets hooks", line: 2},
	{name: "load bytecode", script: `local f = load(function() return "\27Lua\81\0" end)`,
		is: lua.ErrDenied, msg: "load is not available in packets hooks", line: 1},
	{name: "loadstring bytecode", script: `local f = loadstring("\27Lua\81\0\1\4\8\4\8\0")`,
		is: lua.ErrDenied, msg: "loadstring is not available in packets hooks", line: 1},
	{name: "getfenv", script: `local env = getfenv(print)`,
		is: lua.ErrDenied, msg: "getfenv is not available in packets hooks", line: 1},
	{name: "string metatable __index", script: `local idx = getmetatable("").__index
assert(idx == string, "__index is not the string table")
assert(rawget(idx, "dump") == nil and rawget(idx, "__index") == nil, "hidden field")
return idx.dump(print)`,
		is: lua.ErrDenied, msg: "string.dump is not available in packets hooks", line: 4},
	{name: "string.dump", script: `local b = string.dump(function() end)`,
		is: lua.ErrDenied, msg: "string.dump is not available in packets hooks", line: 1},
	{name: "write ../../etc/passwd", script: `local f = io.open("../../../etc/passwd", "w")`,
		is: lua.ErrDenied, msg: "io.open: ../../../etc/passwd resolves to /etc/passwd, outside the hook's directories", line: 1},
	{name: "write through a symlink planted to /",
		setup: func(t *testing.T, m *machine) {
			m.symlink(t, "/", "opt/packets/htop/evil")
			m.symlink(t, "../../../..", "opt/packets/htop/evil2")
		},
		// hostDir is substituted by the test: a directory outside the machine tree.
		script: `local ok, err = pcall(io.open, packets_package_dir .. "/evil2/etc/passwd", "w")
assert(not ok and err:find("resolves to /etc/passwd"), err)
io.open(packets_package_dir .. "/evil" .. hostDir .. "/pwned", "w")`,
		is: lua.ErrDenied, msg: "resolves to /etc/passwd, outside the hook's directories", line: 1},
	{name: "os.rename of a file outside", script: `os.rename("/etc/passwd", path_join(packets_package_dir, "passwd"))`,
		is: lua.ErrDenied, msg: "os.rename: /etc/passwd is outside the hook's directories", line: 1},
	{name: "os.symlink to /etc/shadow", script: `os.symlink("/etc/shadow", path_join(packets_bin_dir, "shadow"))`,
		is: lua.ErrDenied, msg: "os.symlink: link target /etc/shadow is outside the hook's directories", line: 1},
	{name: "infinite loop", child: true, limits: lua.Limits{Timeout: 300 * time.Millisecond},
		script: "local n = 0\nwhile true do n = n + 1 end",
		is:     lua.ErrTimeout, msg: "time limit exceeded (300ms)"},
	{name: "infinite loop inside pcall", child: true, limits: lua.Limits{Timeout: 300 * time.Millisecond},
		script: "while true do\n  pcall(function() while true do end end)\nend",
		is:     lua.ErrTimeout, msg: "time limit exceeded (300ms)"},
	{name: "coroutine loop", child: true, limits: lua.Limits{Timeout: 300 * time.Millisecond},
		script: `local co = coroutine.wrap(function() while true do coroutine.yield() end end)
while true do co() end`,
		is: lua.ErrTimeout, msg: "time limit exceeded (300ms)"},
	{name: "pathological pattern", script: `local i = string.find(("a"):rep(5000), ".-.-.-.-b")`,
		msg: "string.find: pattern with 4 repetitions on a subject of 5000 bytes could backtrack too long", line: 1},
	{name: "string.rep 2^33", script: `local s = string.rep("x", 2^33)`,
		msg: "string.rep: result of 8589934592 bytes exceeds the limit of 16777216", line: 1},
	{name: "table that grows without bound", child: true, limits: lua.Limits{Timeout: 20 * time.Second, MemoryBytes: 16 << 20},
		script: "local t, i = {}, 0\nwhile true do i = i + 1; t[i] = (\"x\"):rep(4096) .. i end",
		is:     lua.ErrMemoryLimit, msg: "memory limit exceeded"},
}

func TestEscapes(t *testing.T) {
	for _, tt := range escapes {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			if tt.setup != nil {
				tt.setup(t, m)
			}
			hostDir := t.TempDir() // outside the machine tree
			before := snapshot(t, m.root)

			h := m.hook(tt.script)
			h.Source = []byte(strings.ReplaceAll(tt.script, "hostDir", `"`+hostDir+`"`))
			var err error
			if tt.child {
				s := startSession(t, tt.limits)
				_, err = s.Run(t.Context(), h)
				// The parent survived, and the session still runs hooks
				// (in a fresh child if the old one was killed).
				if _, err := s.Run(t.Context(), m.hook(`print("still here")`)); err != nil {
					t.Errorf("Run after the attack: %v", err)
				}
			} else {
				_, err = lua.Run(t.Context(), h, quick)
			}
			checkHookError(t, err, tt.is, tt.msg, tt.line)
			if diff := cmp.Diff(before, snapshot(t, m.root)); diff != "" {
				t.Errorf("the machine changed (-before +after):\n%s", diff)
			}
			if entries, err := os.ReadDir(hostDir); err != nil || len(entries) != 0 {
				t.Errorf("outside the machine: %v, %v", entries, err)
			}
		})
	}
}

// checkHookError asserts a *HookError for htop's install.lua that wraps is
// (if set), says msg, and reports line (if set).
func checkHookError(t *testing.T, err error, is error, msg string, line int) {
	t.Helper()
	var he *lua.HookError
	if !errors.As(err, &he) {
		t.Fatalf("error = %v (%T), want a *lua.HookError", err, err)
	}
	if he.Package != "htop" || he.Script != "install.lua" {
		t.Errorf("error names %s: %s, want htop: install.lua", he.Package, he.Script)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error = %q, want one wrapping %q", err, is)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error = %q, want it to say %q", err, msg)
	}
	if line != 0 && he.Line != line {
		t.Errorf("error line = %d, want %d (%q)", he.Line, line, err)
	}
}

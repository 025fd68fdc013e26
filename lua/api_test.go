package lua_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/lua"
	"github.com/packets-dev/packets/packages"
)

// run runs src as htop's install.lua on m, failing the test on error.
func run(t *testing.T, m *machine, src string) lua.Result {
	t.Helper()
	res, err := lua.Run(t.Context(), m.hook(src), quick)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// The environment is exactly the documented one: these globals, and in os,
// io and string exactly these functions.
func TestEnvironment(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `
local function keys(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k)
  return table.concat(k, " ")
end
print(keys(_G))
print(keys(os))
print(keys(io))
print(keys(string))
print(keys(coroutine))
print(keys(getmetatable(assert(io.open("data/etc/htoprc"))).__index))
print(packets_package_dir, data_dir, packets_bin_dir, script)
print(options.color, options.width, options.missing)
print(getmetatable("").__index == string, ("%d"):format(42))`)
	want := []string{
		"_G _VERSION assert coroutine data_dir error getmetatable io ipairs math next options os packets_bin_dir " +
			"packets_package_dir pairs path_join pcall print rawequal rawget rawset script select setmetatable " +
			"string table tonumber tostring type unpack xpcall",
		"copy remove rename symlink",
		"open",
		"byte char find format gfind gmatch gsub len lower match rep reverse sub upper",
		"create resume running status wrap yield",
		"close lines read write",
		"/opt/packets/htop\t/opt/packets/htop/data\t/usr/bin\tinstall.lua",
		"yes\t80\tnil",
		"true\t42",
		"",
	}
	if diff := cmp.Diff(want, strings.Split(res.Output, "\n")); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
}

// Every function the spec removes is gone, and naming it fails the hook
// even under pcall.
func TestRemovedFunctions(t *testing.T) {
	for _, name := range []string{
		"load", "loadstring", "dofile", "loadfile", "require", "module", "getfenv", "setfenv",
		"debug", "collectgarbage", "string.dump", "io.popen", "os.execute", "os.getenv", "os.exit",
		"os.time", "io.lines", "package", "newproxy",
	} {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t)
			_, err := lua.Run(t.Context(), m.hook("local ok = pcall(function() return "+name+" end)\nprint(ok)"), quick)
			checkHookError(t, err, lua.ErrDenied, name+" is not available in packets hooks", 1)
		})
	}
}

func TestCopyKeepsModeAndReplaces(t *testing.T) {
	m := newMachine(t)
	m.write(t, "usr/bin/old", "old\n", 0o644)
	m.symlink(t, "old", "usr/bin/htop") // a symlink at the target is replaced, not written through
	res := run(t, m, `assert(os.copy(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, "htop")))
assert(os.copy("data/etc/htoprc", "/usr/bin/htoprc"))`)

	if diff := cmp.Diff([]string{"/usr/bin/htop", "/usr/bin/htoprc"}, res.Created); diff != "" {
		t.Errorf("Created (-want +got):\n%s", diff)
	}
	fi, err := os.Lstat(m.path("usr/bin/htop"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o755 {
		t.Errorf("mode = %v, want -rwxr-xr-x", fi.Mode())
	}
	if got := m.read(t, "usr/bin/htop"); got != "#!/bin/sh\necho htop\n" {
		t.Errorf("content = %q", got)
	}
	if got := m.read(t, "usr/bin/old"); got != "old\n" {
		t.Errorf("the old symlink's target was written through: %q", got)
	}
	entries, err := os.ReadDir(m.path("usr/bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), packages.HookTempPrefix) {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestSymlinkAndReadThrough(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `assert(os.symlink(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, "htop")))
assert(os.symlink("../../opt/packets/htop/data/etc/htoprc", "/usr/bin/htoprc"))
-- absolute links are machine paths: reading through them works across directories
local f = assert(io.open("/usr/bin/htop"))
print(f:read("*l"))
f:close()
print(assert(io.open("/usr/bin/htoprc")):read("*a"))`)
	if diff := cmp.Diff([]string{"/usr/bin/htop", "/usr/bin/htoprc"}, res.Created); diff != "" {
		t.Errorf("Created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("#!/bin/sh\ncolor=0\n\n", res.Output); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if target, err := os.Readlink(m.path("usr/bin/htop")); err != nil || target != "/opt/packets/htop/data/bin/htop" {
		t.Errorf("link = %q, %v", target, err)
	}
}

func TestWriteConfigFromOptions(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `local f = assert(io.open(path_join(data_dir, "etc/htoprc"), "w"))
assert(f:write("color=", options.color, "\n", "width=", tonumber(options.width) + 20, "\n"))
f:close()
local g = assert(io.open("data/etc/extra.conf", "a"))
g:write("a\n"):write("b\n")
g:close()
for line in assert(io.open("data/etc/htoprc")):lines() do print(line) end
local r = assert(io.open("data/etc/htoprc", "r"))
print(r:read("*l", 5, 1, "*n"))
print(r:read("*a") == "\n", r:read("a") == "", r:read(0), r:read())
r:close()
print(pcall(r.read, r))`)
	if got := m.read(t, "opt/packets/htop/data/etc/htoprc"); got != "color=yes\nwidth=100\n" {
		t.Errorf("htoprc = %q", got)
	}
	if got := m.read(t, "opt/packets/htop/data/etc/extra.conf"); got != "a\nb\n" {
		t.Errorf("extra.conf = %q", got)
	}
	want := "color=yes\nwidth=100\n" +
		"color=yes\twidth\t=\t100\n" +
		"true\ttrue\tnil\tnil\n" +
		"false\tinstall.lua:12: attempt to use a closed file\n"
	if diff := cmp.Diff(want, res.Output); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	wantCreated := []string{"/opt/packets/htop/data/etc/extra.conf", "/opt/packets/htop/data/etc/htoprc"}
	if diff := cmp.Diff(wantCreated, res.Created); diff != "" {
		t.Errorf("Created (-want +got):\n%s", diff)
	}
}

// Ordinary failures return nil, message, errno as standard Lua does.
func TestOrdinaryErrors(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `print(io.open(path_join(data_dir, "missing")))
print(os.remove("/usr/bin/missing"))
print(os.copy("data/missing", "/usr/bin/x"))
print(os.rename("data/missing", "data/other"))
print(os.symlink("data/bin/htop", "data/bin/htop"))
print(io.open(data_dir, "w"))
print(io.open(data_dir))
print(os.remove("data/bin"))
print(os.rename("data/etc", "/usr/bin/etc"))`)
	want := `nil	/opt/packets/htop/data/missing: no such file or directory	2
nil	/usr/bin/missing: no such file or directory	2
nil	/opt/packets/htop/data/missing: no such file or directory	2
nil	/opt/packets/htop/data/missing: no such file or directory	2
nil	/opt/packets/htop/data/bin/htop: file exists	17
nil	/opt/packets/htop/data: is a directory	21
nil	/opt/packets/htop/data: not a regular file
nil	/opt/packets/htop/data/bin: directory not empty	39
nil	/opt/packets/htop/data/etc: invalid cross-device link	18
`
	if diff := cmp.Diff(want, res.Output); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// Installing, re-running the same hook (recovery after a crash), then
// removing: the API lets a hook be idempotent.
func TestIdempotentHookAndRemove(t *testing.T) {
	m := newMachine(t)
	install := `local link = path_join(packets_bin_dir, "htop")
os.remove(link)
assert(os.symlink(path_join(data_dir, "bin/htop"), link))
assert(os.copy(path_join(data_dir, "etc/htoprc"), path_join(packets_bin_dir, "htoprc")))`
	first := run(t, m, install)
	afterFirst := snapshot(t, m.root)
	second := run(t, m, install)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second run (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(afterFirst, snapshot(t, m.root)); diff != "" {
		t.Errorf("second run changed the machine (-first +second):\n%s", diff)
	}

	remove := m.hook(`os.remove(path_join(packets_bin_dir, "htop"))
os.remove(path_join(packets_bin_dir, "htoprc"))`)
	remove.Script = "remove.lua"
	res, err := lua.Run(t.Context(), remove, quick)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lua.Result{Removed: []string{"/usr/bin/htop", "/usr/bin/htoprc"}}, res); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
}

func TestRename(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `assert(os.rename("data/etc/htoprc", "data/etc/htoprc.orig"))
assert(os.copy("data/bin/htop", "data/bin/htop2"))
-- across two hook directories: copied, then removed
assert(os.rename("data/bin/htop2", "/usr/bin/htop"))
assert(os.symlink("htop", "data/bin/h"))
assert(os.rename("data/bin/h", "data/h"))
-- a directory between the package dir and the data dir, nested in it: a real rename
assert(os.rename(data_dir .. "/etc", packets_package_dir .. "/etc"))`)
	// data/etc/htoprc.orig moved on with its directory, which stands for it.
	wantCreated := []string{"/opt/packets/htop/data/h", "/opt/packets/htop/etc", "/usr/bin/htop"}
	wantRemoved := []string{"/opt/packets/htop/data/etc", "/opt/packets/htop/data/etc/htoprc"}
	if diff := cmp.Diff(lua.Result{Created: wantCreated, Removed: wantRemoved}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(m.path("usr/bin/htop")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("moved file: %v, %v", fi, err)
	}
}

// Paths of other packages cannot be written, removed or renamed, not even
// through an alias; and a pcall does not save the hook.
func TestProtectedPaths(t *testing.T) {
	tests := []struct{ name, script, msg string }{
		{"write", `io.open("/usr/bin/vim", "w")`, "io.open: /usr/bin/vim belongs to another package"},
		{"append", `io.open("/usr/bin/vim", "a")`, "io.open: /usr/bin/vim belongs to another package"},
		{"remove", `os.remove("/usr/bin/vim")`, "os.remove: /usr/bin/vim belongs to another package"},
		{"rename onto", `os.rename("data/bin/htop", "/usr/bin/vim")`, "os.rename: /usr/bin/vim belongs to another package"},
		{"rename away", `os.rename("/usr/bin/vim", "/usr/bin/vi")`, "os.rename: /usr/bin/vim belongs to another package"},
		{"copy onto", `os.copy("data/bin/htop", "/usr/bin/vim")`, "os.copy: /usr/bin/vim belongs to another package"},
		{"symlink onto", `os.symlink("htop", "/usr/bin/vim")`, "os.symlink: /usr/bin/vim belongs to another package"},
		{"through a directory alias", `assert(os.symlink(".", "/usr/bin/d"))
io.open("/usr/bin/d/vim", "w")`, "io.open: /usr/bin/vim belongs to another package"},
		{"through a file alias", `assert(os.symlink("vim", "/usr/bin/v"))
io.open("/usr/bin/v", "w")`, "io.open: /usr/bin/vim belongs to another package"},
		{"other package dir", `io.open("/opt/packets/vim/data/bin/vim", "w")`, "is outside the hook's directories"},
		{"in a coroutine", `local ok = coroutine.resume(coroutine.create(function() io.open("/usr/bin/vim", "w") end))
print(ok)`, "io.open: /usr/bin/vim belongs to another package"},
		{"under pcall", `local ok = pcall(os.remove, "/usr/bin/vim")
print("carried on")`, "os.remove: /usr/bin/vim belongs to another package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			_, err := lua.Run(t.Context(), m.hook(tt.script), quick)
			checkHookError(t, err, lua.ErrDenied, tt.msg, 0)
			if got := m.read(t, "usr/bin/vim"); got != "vim\n" {
				t.Errorf("/usr/bin/vim = %q", got)
			}
		})
	}
}

// Writable limits where a hook writes; the other hook directories stay
// readable.
func TestWritable(t *testing.T) {
	m := newMachine(t)
	h := m.hook(`print(assert(io.open("data/etc/htoprc")):read("*a"))
assert(os.copy("data/bin/htop", "/usr/bin/htop"))
io.open("data/etc/htoprc", "w")`)
	h.Writable = []string{"/usr/bin"}
	_, err := lua.Run(t.Context(), h, quick)
	checkHookError(t, err, lua.ErrDenied, "io.open: /opt/packets/htop/data/etc/htoprc is not writable by hooks", 3)
	if _, err := os.Stat(m.path("usr/bin/htop")); err != nil {
		t.Errorf("the allowed copy: %v", err)
	}
}

// Symlinks must point inside the hook's directories, also after a move and
// when their target is itself a link leading out.
func TestSymlinkTargets(t *testing.T) {
	tests := []struct {
		name, script, msg string
		setup             func(t *testing.T, m *machine)
	}{
		{name: "relative out", script: `os.symlink("../../etc/shadow", "/usr/bin/shadow")`,
			msg: "os.symlink: link target ../../etc/shadow resolves to /etc/shadow, outside"},
		{name: "through an existing link", script: `os.symlink("/usr/bin/out/shadow", "/usr/bin/shadow")`,
			setup: func(t *testing.T, m *machine) { m.symlink(t, "/etc", "usr/bin/out") },
			msg:   "resolves to /etc/shadow, outside"},
		{name: "relative, deep", script: `os.symlink("../../../../../../usr/lib", "data/etc/lib")`,
			msg: "os.symlink: link target ../../../../../../usr/lib resolves to /usr/lib, outside"},
		{name: "moved by rename", script: `assert(os.symlink("../../../../bin", "data/etc/a/b/c"))
os.rename("data/etc/a", "/usr/bin/a")`,
			setup: func(t *testing.T, m *machine) {
				if err := os.MkdirAll(m.path("opt/packets/htop/data/etc/a/b"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			msg: "os.rename: link target ../../../../bin resolves to /bin, outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			if tt.setup != nil {
				tt.setup(t, m)
			}
			_, err := lua.Run(t.Context(), m.hook(tt.script), quick)
			checkHookError(t, err, lua.ErrDenied, tt.msg, 0)
		})
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, script, want string
		prefix             bool // want is only the start
	}{
		{name: "error", script: "local a = 1\n\nerror(\"boom\")", want: "htop: install.lua:3: boom"},
		{name: "runtime", script: "local t = nil\nprint(t.x)",
			want: "htop: install.lua:2: attempt to index a non-table object(nil) with key 'x'"},
		{name: "syntax", script: "if then", want: "htop: install.lua:1: syntax error near 'then'"},
		{name: "assert", script: "\nassert(false, \"custom\")", want: "htop: install.lua:2: custom"},
		{name: "error table", script: "error({})", want: "htop: install.lua: table: 0x", prefix: true},
		{name: "long error", script: "error((\"x\"):rep(100000))",
			want: "htop: install.lua:1: " + strings.Repeat("x", 4096) + "…"},
		{name: "control character", script: "io.open(\"a\\nb\")",
			want: `htop: install.lua:1: bad argument #1 to open (invalid path "a\nb")`},
		{name: "bidi override", script: "os.symlink(\"\\226\\128\\174x\", \"l\")",
			want: `htop: install.lua:1: bad argument #1 to symlink (invalid link target "\u202ex")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			_, err := lua.Run(t.Context(), m.hook(tt.script), quick)
			var he *lua.HookError
			if !errors.As(err, &he) {
				t.Fatalf("error = %v (%T), want a *lua.HookError", err, err)
			}
			if got := err.Error(); got != tt.want && !(tt.prefix && strings.HasPrefix(got, tt.want)) {
				t.Errorf("error = %.300q, want %.300q", got, tt.want)
			}
		})
	}
}

func TestOutputCap(t *testing.T) {
	m := newMachine(t)
	res, err := lua.Run(t.Context(), m.hook(`for i = 1, 100 do print(("x"):rep(9)) end`), lua.Limits{OutputBytes: 25})
	if err != nil {
		t.Fatal(err)
	}
	if want := "xxxxxxxxx\nxxxxxxxxx\nxxxxx\n[output truncated]\n"; res.Output != want {
		t.Errorf("output = %q, want %q", res.Output, want)
	}
}

// A missing bin dir is an ordinary error for the hook, not a setup failure.
func TestMissingDirectory(t *testing.T) {
	m := newMachine(t)
	if err := os.RemoveAll(m.path("usr/bin")); err != nil {
		t.Fatal(err)
	}
	res := run(t, m, `print(os.copy("data/bin/htop", "/usr/bin/htop"))`)
	if want := "nil\t/usr/bin/htop: no such file or directory\t2\n"; res.Output != want {
		t.Errorf("output = %q, want %q", res.Output, want)
	}
}

func TestInvalidHook(t *testing.T) {
	m := newMachine(t)
	h := m.hook("")
	h.BinDir = "usr/bin"
	_, err := lua.Run(t.Context(), h, quick)
	if err == nil || !strings.Contains(err.Error(), `machine path "usr/bin" is not absolute and clean`) {
		t.Errorf("error = %v", err)
	}
}

// Patterns and string.rep within their caps work as in Lua.
func TestStringCaps(t *testing.T) {
	m := newMachine(t)
	res := run(t, m, `local s = ("ab"):rep(3)
print(s, s:find("b", 1, true), s:match("^(a)(b)"), (s:gsub("a", "x")))
for w in ("one two"):gmatch("%a+") do print(w) end
local line = (" "):rep(3000) .. "x" .. (" "):rep(3000)
print(line:match("^%s*(.-)%s*$"))
print(pcall(string.rep, "x", 1e9))`)
	want := "ababab\t2\ta\txbxbxb\none\ntwo\nx\n" +
		"false\tinstall.lua:6: string.rep: result of 1000000000 bytes exceeds the limit of 16777216\n"
	if diff := cmp.Diff(want, res.Output); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// In-process, the time limit is enforced by the VM between instructions, so
// the error names the line the hook was stopped at.
func TestRunTimeout(t *testing.T) {
	m := newMachine(t)
	_, err := lua.Run(t.Context(), m.hook("local n = 0\nwhile true do\n  n = n + 1\nend"), lua.Limits{Timeout: 100 * time.Millisecond})
	checkHookError(t, err, lua.ErrTimeout, "time limit exceeded (100ms)", 0)
	var he *lua.HookError
	if errors.As(err, &he) && (he.Line < 2 || he.Line > 4) {
		t.Errorf("line = %d, want one of the loop's (2-4)", he.Line)
	}
}

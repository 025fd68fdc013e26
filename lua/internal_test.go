package lua

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

func TestRepetitions(t *testing.T) {
	tests := []struct {
		pattern string
		want    int
	}{
		{"abc", 0},
		{"a*", 1},
		{".-.-.-.-b", 4},
		{"^%s*(.-)%s*$", 3},
		{"%*%+%-", 0},      // escaped
		{"[*+-]", 0},       // inside a set
		{"[%]]+x", 1},      // escaped ] in a set
		{"[]]*", 1},        // leading ] is literal
		{"[^]]-", 1},       // and after ^
		{"%b()*", 0},       // %bxy takes no quantifier; the * is a literal item
		{"%f[%w]%w+", 1},   // frontier
		{"(%w+)=(%w+)", 2}, // captures
		{"a?b?", 0},        // ? is bounded
	}
	for _, tt := range tests {
		if got := repetitions(tt.pattern); got != tt.want {
			t.Errorf("repetitions(%q) = %d, want %d", tt.pattern, got, tt.want)
		}
	}
}

func TestProtectionHolds(t *testing.T) {
	p := newProtection([]string{"/usr/bin/vim", "/usr/share/vim/x", "/usr/bin/vim-tiny"}, "")
	tests := []struct {
		path         string
		withChildren bool
		want         bool
	}{
		{"/usr/bin/vim", false, true},
		{"/usr/bin/vi", false, false},
		{"/usr/share/vim", false, false},
		{"/usr/share/vim", true, true},
		{"/usr/share", true, true},
		{"/usr/bin/vim-tiny", false, true},
		{"/usr/share/vi", true, false}, // a prefix of a name, not a parent directory
		{"/", true, true},
		{"/opt", true, false},
	}
	for _, tt := range tests {
		if got := p.holds(tt.path, tt.withChildren); got != tt.want {
			t.Errorf("holds(%q, %v) = %v, want %v", tt.path, tt.withChildren, got, tt.want)
		}
	}
	p = newProtection([]string{"/a/b-c", "/a/b/c"}, "")
	if !p.holds("/a/b", true) {
		t.Errorf(`holds("/a/b", true) = false with "/a/b-c" sorting before "/a/b/c"`)
	}
}

// A sandbox child's owners and claims protect a path from every package
// but its owner, the same way Hook.Protected does.
func TestProtectionHoldsClaims(t *testing.T) {
	owners := claims{"/usr/bin/vim": "vim", "/usr/bin/htop": "htop"}
	c := claims{"/usr/share/vim/x": "vim"}
	p := newProtection([]string{"/usr/bin/nano"}, "htop", owners, c)
	tests := []struct {
		path         string
		withChildren bool
		want         bool
	}{
		{"/usr/bin/vim", false, true},
		{"/usr/bin/htop", false, false}, // its own
		{"/usr/bin/nano", false, true},  // Hook.Protected still counts
		{"/usr/share/vim", false, false},
		{"/usr/share/vim", true, true},
		{"/usr/share/vi", true, false},
		{"/usr/bin", true, true},
		{"/usr/bin/htop", true, false},
		{"/opt", true, false},
	}
	for _, tt := range tests {
		if got := p.holds(tt.path, tt.withChildren); got != tt.want {
			t.Errorf("holds(%q, %v) = %v, want %v", tt.path, tt.withChildren, got, tt.want)
		}
	}
}

// isEscape depends on the text of os.Root's unexported error: pin it.
func TestIsEscape(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/", filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, dotdot := r.Open("../x")
	_, link := r.Open("up/etc")
	_, missing := r.Open("missing")
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"dotdot", dotdot, true},
		{"symlink", link, true},
		{"missing", missing, false},
		{"errno", syscall.EXDEV, false},
		{"nil", nil, false},
		{"other", errors.New("other"), false},
	} {
		if got := isEscape(tt.err); got != tt.want {
			t.Errorf("%s: isEscape(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// A sandbox child keeps the machine tree and the bin dir open from one
// hook to the next, never a package dir (an apply replaces it between
// batches), and closes only what it does not keep after each hook.
func TestKeptRoots(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"usr/bin", "opt/packets/a/data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := Hook{Package: "a", Script: "install.lua", Root: dir, PackageDir: "/opt/packets/a", DataDir: "/opt/packets/a/data", BinDir: "/usr/bin"}
	keep := newKeptRoots()
	defer keep.close()
	opened := func() map[string]*os.Root {
		roots := newRoots(h, keep)
		defer closeRoots(roots)
		got := map[string]*os.Root{}
		for _, d := range roots {
			r, err := d.open()
			if err != nil {
				t.Fatal(err)
			}
			got[d.prefix] = r
		}
		return got
	}
	first, second := opened(), opened()
	if first["/usr/bin"] != second["/usr/bin"] {
		t.Error("the bin dir was opened again for the second hook")
	}
	if _, err := second["/usr/bin"].Stat("."); err != nil {
		t.Errorf("the kept bin dir was closed with the first hook: %v", err)
	}
	for _, p := range []string{"/opt/packets/a", "/opt/packets/a/data"} {
		if first[p] == second[p] {
			t.Errorf("%s was kept", p)
		}
		if _, err := first[p].Stat("."); err == nil {
			t.Errorf("%s of the first hook is still open", p)
		}
	}
	if len(keep.roots) != 2 {
		t.Errorf("kept %d roots, want the machine tree and the bin dir", len(keep.roots))
	}
}

// The environment the shared library functions keep, the scratch state's
// _G, is empty once the library is built: were a way to reach it (getfenv)
// ever to come back, it would hold nothing, least of all the loaders.
func TestStdlibEmptiesItsScratchGlobals(t *testing.T) {
	std := newStdlib()
	checked := 0
	check := func(name string, v glua.LValue) {
		fn, ok := v.(*glua.LFunction)
		if !ok {
			return
		}
		checked++
		if k, _ := fn.Env.Next(glua.LNil); k != glua.LNil {
			t.Errorf("%s keeps an environment holding %v", name, k)
		}
	}
	for _, f := range std.globals {
		check(f.name, f.value)
	}
	for _, lib := range std.libs {
		for _, f := range lib.fields {
			check(lib.name+"."+f.name, f.value)
		}
	}
	if checked < 50 {
		t.Errorf("checked %d shared functions, want the library's (more than 50)", checked)
	}
}

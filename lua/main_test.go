package lua_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/packets-dev/packets/lua"
)

// childEnv makes the test binary a sandbox child: Runner{Command:
// []string{os.Args[0], "-test.run=^$"}, Env: []string{childEnv + "=1"}}
// re-executes the test binary, whose TestMain then serves the protocol as
// `packets __hook-child` does.
const childEnv = "PACKETS_LUA_TEST_CHILD"

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(childEnv) == "1":
		//nolint:forbidigo // TestMain has no t.Context; the child runs until stdin ends.
		if err := lua.ServeChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case os.Getenv(parentEnv) == "1":
		os.Exit(serveParent())
	}
	os.Exit(m.Run())
}

// testRunner returns a Runner whose children are this test binary. Under
// -race a child would sleep a second at exit (GORACE atexit_sleep_ms).
func testRunner(lim lua.Limits) *lua.Runner {
	return &lua.Runner{
		Command: []string{os.Args[0], "-test.run=^$"},
		Env:     []string{childEnv + "=1", "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"},
		Limits:  lim,
	}
}

// startSession starts a child and closes it at the end of the test.
func startSession(t *testing.T, lim lua.Limits) *lua.Session {
	t.Helper()
	s, err := testRunner(lim).Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// machine is a small machine tree under a temp dir: the package htop (being
// hooked), the package vim (owning /usr/bin/vim), and system files.
type machine struct {
	root string
}

func newMachine(t testing.TB) *machine {
	t.Helper()
	m := &machine{root: t.TempDir()}
	for _, f := range []struct {
		name, content string
		mode          fs.FileMode
	}{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644},
		{"etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600},
		{"opt/packets/htop/data/bin/htop", "#!/bin/sh\necho htop\n", 0o755},
		{"opt/packets/htop/data/etc/htoprc", "color=0\n", 0o644},
		{"opt/packets/vim/data/bin/vim", "vim\n", 0o755},
		{"usr/bin/vim", "vim\n", 0o755},
		{"usr/lib/libc.so", "libc\n", 0o644},
	} {
		m.write(t, f.name, f.content, f.mode)
	}
	return m
}

func (m *machine) path(name string) string { return filepath.Join(m.root, filepath.FromSlash(name)) }

func (m *machine) write(t testing.TB, name, content string, mode fs.FileMode) {
	t.Helper()
	p := m.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func (m *machine) symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, m.path(name)); err != nil {
		t.Fatal(err)
	}
}

func (m *machine) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(m.path(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hook is the htop hook with source src.
func (m *machine) hook(src string) lua.Hook {
	return lua.Hook{
		Package:    "htop",
		Script:     "install.lua",
		Source:     []byte(src),
		Root:       m.root,
		PackageDir: "/opt/packets/htop",
		DataDir:    "/opt/packets/htop/data",
		BinDir:     "/usr/bin",
		Protected:  []string{"/opt/packets/vim/data/bin/vim", "/usr/bin/vim"},
		Options:    map[string]string{"color": "yes", "width": "80"},
	}
}

// snapshot describes every entry of a tree: type, mode, content digest or
// link target.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			snap[rel] = "symlink -> " + target
		case fi.IsDir():
			snap[rel] = fmt.Sprintf("dir %v", fi.Mode())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			snap[rel] = fmt.Sprintf("file %v %x", fi.Mode(), sha256.Sum256(b))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return snap
}

// quick are limits for tests whose hooks finish at once.
var quick = lua.Limits{Timeout: 20 * time.Second}

package lua_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/lua"
)

// Every example package's hooks are idempotent, as recovery needs (it may
// run a hook again after a crash): running one twice leaves the machine as
// running it once does, and the second run reports the same paths.
func TestExampleHooksAreIdempotent(t *testing.T) {
	dirs, err := filepath.Glob("../examples/packages/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no example packages: %v", err)
	}
	hooks := 0
	for _, dir := range dirs {
		name := filepath.Base(dir)
		for _, script := range []string{"install.lua", "remove.lua"} {
			src, err := os.ReadFile(filepath.Join(dir, script))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			hooks++
			t.Run(name+"/"+script, func(t *testing.T) {
				root := t.TempDir()
				// The package's files in place, as the engine leaves them.
				if err := os.CopyFS(filepath.Join(root, "opt/packets", name), os.DirFS(dir)); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				h := lua.Hook{
					Package: name, Script: script, Source: src, Root: root,
					PackageDir: "/opt/packets/" + name, DataDir: "/opt/packets/" + name + "/data",
					BinDir: "/usr/bin", Options: map[string]string{"message": "hi"},
				}
				first, err := lua.Run(t.Context(), h, quick)
				if err != nil {
					t.Fatalf("first run: %v", err)
				}
				once := snapshot(t, root)
				second, err := lua.Run(t.Context(), h, quick)
				if err != nil {
					t.Fatalf("second run: %v", err)
				}
				if diff := cmp.Diff(once, snapshot(t, root)); diff != "" {
					t.Errorf("a second run changed the machine (-once +twice):\n%s", diff)
				}
				if script == "install.lua" && !cmp.Equal(first.Created, second.Created) {
					t.Errorf("created %q, then %q", first.Created, second.Created)
				}
			})
		}
	}
	if hooks < 3 {
		t.Fatalf("found %d example hooks; the examples are meant to show them", hooks)
	}
}

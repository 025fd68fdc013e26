package packages

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const demoManifest = `[Info]
name = "demo"
version = "1.0.0"
description = "a package that uses every feature of the format"
family = "1f84ca15-5077-4f1d-a370-0ec860766eb2"
serial = 3

[Hooks]
install = "install.lua"
remove = "remove.lua"

[Files]
config = ["data/etc/demo.conf"]
setuid = ["data/bin/demo-su"]
`

// demoSource writes a package source that uses every feature: hooks,
// config and setuid files, modes, symlinks, a hard link, an empty and a
// sticky directory, a long and a non-ASCII name.
func demoSource(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	long := "data/share/" + strings.Repeat("long-name-", 15) + "x" // > 100 bytes: needs PAX
	files := []struct {
		path string
		mode fs.FileMode
		body string
	}{
		{ManifestFile, 0o644, demoManifest},
		{InstallHook, 0o644, "print('installed')\n"},
		{RemoveHook, 0o644, "print('removed')\n"},
		{"data/bin/demo", 0o755, "#!/bin/sh\necho demo\n"},
		{"data/bin/demo-su", 0o755 | fs.ModeSetuid, "#!/bin/sh\nid\n"},
		{"data/etc/demo.conf", 0o600, "key = value\n"},
		{"data/lib/libdemo.so.1.2", 0o644, strings.Repeat("\x7fELF", 2000)},
		{"data/share/doc/README", 0o444, "read me\n"},
		{"data/share/doc/ünïcødé.txt", 0o644, "ü\n"},
		{long, 0o644, "long\n"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{"data/empty", 0o755}, {"data/tmp", 0o777 | fs.ModeSticky}, {"data/private", 0o700}} {
		if err := os.Mkdir(filepath.Join(dir, d.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d.path), d.mode); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Symlink("libdemo.so.1.2", filepath.Join(dir, "data/lib/libdemo.so.1")))
	must(t, os.Symlink("../../bin/demo", filepath.Join(dir, "data/share/doc/demo-link")))
	must(t, os.Link(filepath.Join(dir, "data/bin/demo"), filepath.Join(dir, "data/bin/demo-alias")))
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func buildBytes(t testing.TB, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := Build(dir, &b); err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b.Bytes()
}

func TestBuildInspect(t *testing.T) {
	src := demoSource(t)
	c, err := Inspect(bytes.NewReader(buildBytes(t, src)), Limits{})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	sum := func(s string) Digest { return SumBytes([]byte(s)) }
	demo := sum("#!/bin/sh\necho demo\n")
	lib := strings.Repeat("\x7fELF", 2000)
	long := "data/share/" + strings.Repeat("long-name-", 15) + "x"
	want := []Entry{
		{Path: "data/bin", Type: TypeDir, Mode: 0o755},
		{Path: "data/bin/demo", Type: TypeFile, Mode: 0o755, Size: 20, Digest: demo},
		{Path: "data/bin/demo-alias", Type: TypeHardlink, Mode: 0o755, Size: 20, Link: "data/bin/demo", Digest: demo},
		{Path: "data/bin/demo-su", Type: TypeFile, Mode: 0o755 | fs.ModeSetuid, Size: 13, Digest: sum("#!/bin/sh\nid\n")},
		{Path: "data/empty", Type: TypeDir, Mode: 0o755},
		{Path: "data/etc", Type: TypeDir, Mode: 0o755},
		{Path: "data/etc/demo.conf", Type: TypeFile, Mode: 0o600, Size: 12, Digest: sum("key = value\n")},
		{Path: "data/lib", Type: TypeDir, Mode: 0o755},
		{Path: "data/lib/libdemo.so.1", Type: TypeSymlink, Mode: 0o777, Link: "libdemo.so.1.2"},
		{Path: "data/lib/libdemo.so.1.2", Type: TypeFile, Mode: 0o644, Size: int64(len(lib)), Digest: sum(lib)},
		{Path: "data/private", Type: TypeDir, Mode: 0o700},
		{Path: "data/share", Type: TypeDir, Mode: 0o755},
		{Path: "data/share/doc", Type: TypeDir, Mode: 0o755},
		{Path: "data/share/doc/README", Type: TypeFile, Mode: 0o444, Size: 8, Digest: sum("read me\n")},
		{Path: "data/share/doc/demo-link", Type: TypeSymlink, Mode: 0o777, Link: "../../bin/demo"},
		{Path: "data/share/doc/ünïcødé.txt", Type: TypeFile, Mode: 0o644, Size: 3, Digest: sum("ü\n")},
		{Path: long, Type: TypeFile, Mode: 0o644, Size: 5, Digest: sum("long\n")},
		{Path: "data/tmp", Type: TypeDir, Mode: 0o777 | fs.ModeSticky},
	}
	if diff := cmp.Diff(want, c.Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if got, want := c.InstalledSize, int64(20+13+12+len(lib)+8+3+5); got != want {
		t.Errorf("InstalledSize = %d, want %d", got, want)
	}
	if string(c.InstallHook) != "print('installed')\n" || string(c.RemoveHook) != "print('removed')\n" {
		t.Errorf("hooks = %q, %q", c.InstallHook, c.RemoveHook)
	}
	if c.Manifest.Name != "demo" || c.Manifest.Serial != 3 {
		t.Errorf("manifest = %+v", c.Manifest)
	}
}

// TestBuildDeterministic builds the same tree twice, and a copy of it made
// at another time in another place, and wants the same bytes each time.
func TestBuildDeterministic(t *testing.T) {
	src := demoSource(t)
	a, b := buildBytes(t, src), buildBytes(t, src)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same tree differ")
	}
	copyDir := t.TempDir()
	if err := os.CopyFS(copyDir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// CopyFS loses what the test tree relies on; restore it.
	must(t, os.Chmod(filepath.Join(copyDir, "data/bin/demo-su"), 0o755|fs.ModeSetuid))
	must(t, os.Chmod(filepath.Join(copyDir, "data/tmp"), 0o777|fs.ModeSticky))
	must(t, os.Chmod(filepath.Join(copyDir, "data/private"), 0o700))
	must(t, os.Chmod(filepath.Join(copyDir, "data/share/doc/README"), 0o444))
	must(t, os.Chmod(filepath.Join(copyDir, "data/etc/demo.conf"), 0o600))
	must(t, os.Remove(filepath.Join(copyDir, "data/bin/demo-alias")))
	must(t, os.Link(filepath.Join(copyDir, "data/bin/demo"), filepath.Join(copyDir, "data/bin/demo-alias")))
	if c := buildBytes(t, copyDir); !bytes.Equal(a, c) {
		t.Fatal("a copy of the tree builds to different bytes")
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"undeclared hook", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			writeFile(t, dir, InstallHook, "print(1)", 0o644)
		}, `install.lua is present but not declared: add install = "install.lua"`},
		{"declared hook missing", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest("[Hooks]\nremove = \"remove.lua\"\n"), 0o644)
		}, "remove.lua is declared in the manifest's [Hooks] but missing"},
		{"unknown top-level file", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			writeFile(t, dir, "README.md", "hi", 0o644)
		}, `"README.md": not allowed at the top of a package`},
		{"no manifest", func(t *testing.T, dir string) {
			writeFile(t, dir, "data/x", "hi", 0o644)
		}, "manifest.toml: no such file"},
		{"invalid manifest", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, "[Info]\nname = \"Bad\"\n", 0o644)
		}, "Info.name"},
		{"undeclared setuid", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			writeFile(t, dir, "data/bin/su", "x", 0o755|fs.ModeSetuid)
		}, `archive entry "data/bin/su": setuid/setgid bit set but the path is not declared`},
		{"symlink leaving the package", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			must(t, os.MkdirAll(filepath.Join(dir, "data/etc"), 0o755))
			must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "data/etc/passwd")))
		}, `archive entry "data/etc/passwd": symlink target "/etc/passwd" is absolute`},
		{"fifo", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			must(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
			must(t, syscall.Mkfifo(filepath.Join(dir, "data/pipe"), 0o644))
		}, "data/pipe: a FIFO cannot be packaged"},
		{"declared config missing", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest("[Files]\nconfig = [\"data/etc/a.conf\"]\n"), 0o644)
			writeFile(t, dir, "data/etc/b.conf", "x", 0o644)
		}, `archive entry "data/etc/a.conf": declared in the manifest's [Files] config but not a regular file`},
		{"data is a symlink", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			must(t, os.Symlink("/usr", filepath.Join(dir, "data")))
		}, "data is not a directory"},
		{"reserved name", func(t *testing.T, dir string) {
			writeFile(t, dir, ManifestFile, testManifest(""), 0o644)
			writeFile(t, dir, "data/.pk-x", "x", 0o644)
		}, "reserved for temporary files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			var b bytes.Buffer
			_, err := Build(dir, &b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func writeFile(t testing.TB, dir, name, body string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(body), 0o644))
	must(t, os.Chmod(p, mode))
}

func TestBuildFile(t *testing.T) {
	src := demoSource(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "demo.tar.zst")
	m, d, err := BuildFile(src, out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := SumBytes(b); got != d {
		t.Errorf("digest %s, file hashes to %s", d, got)
	}
	if m.Name != "demo" {
		t.Errorf("manifest name %q", m.Name)
	}
	if !bytes.Equal(b, buildBytes(t, src)) {
		t.Error("BuildFile and Build differ")
	}
	// A failed build leaves neither the output nor a temporary behind.
	must(t, os.Remove(out))
	writeFile(t, src, "stray", "x", 0o644)
	if _, _, err := BuildFile(src, out); err == nil {
		t.Fatal("BuildFile of a bad tree succeeded")
	}
	left := snapshot(t, outDir)
	delete(left, ".")
	if len(left) != 0 {
		t.Errorf("a failed build left files behind: %v", left)
	}
}

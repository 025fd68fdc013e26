package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// small is a corpus of 6 packages, 60 files, one binary, one upgrade.
func small(out string) config {
	return config{out: out, prefix: "t", packages: 6, files: 60, smallMB: 1, binaries: 1, binaryMB: 1,
		upgrades: 2, hooks: true, filesPerDir: 20, vocabulary: 64,
		formats: map[string]bool{"packets": true, "deb": true, "pacman": true}}
}

// TestDeterministic: the same flags give the same bytes, and the three
// formats of a package hold the very same files.
func TestDeterministic(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{a, b} {
		if err := run(small(dir)); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := sums(t, a), sums(t, b)
	if len(sa) == 0 || fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Fatalf("two runs differ:\n%v\n%v", sa, sb)
	}
	var upgrades, files int
	for p := range sa {
		if strings.HasPrefix(p, "packets/") && strings.HasSuffix(p, "/manifest.toml") && strings.Contains(p, "-2/") {
			upgrades++
		}
		rest, ok := strings.CutPrefix(p, "packets/")
		if !ok || !strings.Contains(rest, "/data/") {
			continue
		}
		files++
		id, dataPath, _ := strings.Cut(rest, "/data/")
		name, _, _ := strings.Cut(id, "-")
		for _, format := range []string{"deb", "pacman"} {
			twin := fmt.Sprintf("%s/%s/opt/packets/%s/data/%s", format, id, name, dataPath)
			if sa[twin] != sa[p] {
				t.Errorf("%s: %s differs or is missing", p, twin)
			}
		}
	}
	if upgrades != 2 {
		t.Errorf("%d packages with a serial 2, want 2", upgrades)
	}
	// 60 small files and t000's binary, then the serial 2s of t000 (10 files
	// and its binary) and t003 (10 files).
	if want := 60 + 1 + 10 + 1 + 10; files != want {
		t.Errorf("%d data files, want %d", files, want)
	}
}

func sums(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDependencies: with -deps, every dependency names an earlier package
// (no cycles), the three formats and the testsolv case agree, and the state
// and the install jobs name the same packages.
func TestDependencies(t *testing.T) {
	dir := t.TempDir()
	c := small(filepath.Join(dir, "c"))
	c.packages, c.files, c.binaries, c.upgrades, c.deps = 40, 40, 0, 0, 2
	c.stateEvery, c.stateFile, c.testsolvFile = 7, filepath.Join(dir, "state.hcl"), filepath.Join(dir, "case.t")
	if err := run(c); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range c.packages {
		ds := depsOf(&c, i)
		total += len(ds)
		m, err := os.ReadFile(filepath.Join(c.out, "packets", c.name(i)+"-1", "manifest.toml"))
		if err != nil {
			t.Fatal(err)
		}
		control, err := os.ReadFile(filepath.Join(c.out, "deb", c.name(i)+"-1", "DEBIAN", "control"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.on >= i {
				t.Errorf("%s depends on %s, not an earlier package", c.name(i), c.name(d.on))
			}
			if !strings.Contains(string(m), `"`+c.name(d.on)) || !strings.Contains(string(control), c.name(d.on)) {
				t.Errorf("%s: dependency on %s missing from a format", c.name(i), c.name(d.on))
			}
		}
	}
	if total == 0 {
		t.Fatal("no dependencies at all")
	}
	state, err := os.ReadFile(c.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := os.ReadFile(c.testsolvFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(tc), "#>=Req: "); n != total {
		t.Errorf("testsolv case has %d requirements, want %d", n, total)
	}
	for i := 0; i < c.packages; i += 7 {
		if !strings.Contains(string(state), fmt.Sprintf("package %q {}", c.name(i))) || !strings.Contains(string(tc), "job install name "+c.name(i)+"\n") {
			t.Errorf("%s is not in both the state and the jobs", c.name(i))
		}
	}
}

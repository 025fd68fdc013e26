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
		upgrades: 2, hooks: true, filesPerDir: 20, vocabulary: 64}
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

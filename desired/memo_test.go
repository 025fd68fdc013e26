package desired

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// memoFixture is a machine's state files in a temporary directory, run
// from there so that positions read as an administrator writes them.
func memoFixture(t *testing.T, files map[string]string) Memo {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	t.Chdir(dir)
	return Memo{Path: "state.memo", Program: "test 1", Write: true}
}

// loadBoth loads the machine's state through memo and without it, and
// fails unless both give the same state; it returns it and whether the memo
// was rewritten.
func loadBoth(t *testing.T, memo Memo) (State, bool) {
	t.Helper()
	want, err := LoadMachine("state.hcl", "state.d")
	if err != nil {
		t.Fatalf("LoadMachine: %v", err)
	}
	got, wrote, memoErr, err := LoadMachineMemo("state.hcl", "state.d", memo)
	if err != nil || memoErr != nil {
		t.Fatalf("LoadMachineMemo: %v, memo: %v", err, memoErr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("through the memo (-parsed +memo):\n%s", diff)
	}
	return got, wrote
}

func TestMemoGivesWhatParsingGives(t *testing.T) {
	design, err := os.ReadFile(filepath.Join("testdata", "valid", "design.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	memo := memoFixture(t, map[string]string{
		"state.hcl": string(design),
		"state.d/10-web.hcl": `locals { w = 8 }
package "nginx-extras" {
  options = { workers = local.w, tls = true }
  version = ">= 1.2, < 2"
}
package "empty-options" { options = {} }
package "nulls" {
  options = { a = null }
  version = null
}
`,
		"state.d/20-gone.hcl": "package \"vim\" { ensure = \"absent\" }\npackage \"held\" {\n  hold = true\n  repo = \"extra\"\n}\n",
	})
	if _, wrote := loadBoth(t, memo); !wrote {
		t.Fatal("the first load did not write the memo")
	}
	if _, wrote := loadBoth(t, memo); wrote {
		t.Fatal("the second load of the same files rewrote the memo instead of reading it")
	}
}

func TestMemoAnswersWithoutParsing(t *testing.T) {
	memo := memoFixture(t, map[string]string{"state.hcl": "package \"htop\" {}\n"})
	loadBoth(t, memo)
	// A memo written for these very bytes, holding another state: it is
	// what a load returns, so a hit does not parse.
	src, _ := os.ReadFile("state.hcl")
	planted := State{Packages: map[packages.Name]Want{"planted": {Name: "planted"}}, Files: []string{"state.hcl"}}
	if err := writeMemo(memo.Path, memoKey(memo.Program, []string{"state.hcl"}, [][]byte{src}), planted); err != nil {
		t.Fatal(err)
	}
	got, wrote, _, err := LoadMachineMemo("state.hcl", "state.d", memo)
	if err != nil || wrote {
		t.Fatalf("LoadMachineMemo: wrote %v, %v", wrote, err)
	}
	if diff := cmp.Diff(planted, got); diff != "" {
		t.Errorf("state (-planted +got):\n%s", diff)
	}
}

func TestMemoSeesEveryChange(t *testing.T) {
	memo := memoFixture(t, map[string]string{"state.hcl": "package \"aaaa\" {}\n"})
	loadBoth(t, memo)
	fi, err := os.Stat("state.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		do   func() error
		want []packages.Name
	}{
		{"same size, same mtime", func() error {
			if err := os.WriteFile("state.hcl", []byte("package \"bbbb\" {}\n"), 0o644); err != nil {
				return err
			}
			return os.Chtimes("state.hcl", fi.ModTime(), fi.ModTime())
		}, []packages.Name{"bbbb"}},
		{"a drop-in added", func() error {
			return os.WriteFile("state.d/x.hcl", []byte("package \"cccc\" {}\n"), 0o644)
		}, []packages.Name{"bbbb", "cccc"}},
		{"a drop-in renamed", func() error { return os.Rename("state.d/x.hcl", "state.d/y.hcl") }, []packages.Name{"bbbb", "cccc"}},
		{"a drop-in hidden", func() error { return os.Rename("state.d/y.hcl", "state.d/.y.hcl") }, []packages.Name{"bbbb"}},
		{"the main file removed", func() error { return os.Remove("state.hcl") }, nil},
	} {
		if err := os.MkdirAll("state.d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, wrote := loadBoth(t, memo)
		if !wrote {
			t.Errorf("%s: the memo was not rewritten", step.name)
		}
		if diff := cmp.Diff(step.want, got.Names()); diff != "" {
			t.Errorf("%s: names (-want +got):\n%s", step.name, diff)
		}
		if got.Files == nil && got.Packages == nil {
			t.Errorf("%s: a nil state", step.name)
		}
	}
	// Another build of packets does not use this one's memo.
	memo.Program = "test 2"
	if _, wrote := loadBoth(t, memo); !wrote {
		t.Error("a memo written by another program was used")
	}
}

func TestMemoDamagedIsIgnored(t *testing.T) {
	memo := memoFixture(t, map[string]string{"state.hcl": "package \"htop\" {}\npackage \"tmux\" {}\n"})
	loadBoth(t, memo)
	good, err := os.ReadFile(memo.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, damaged := range map[string][]byte{
		"empty":          {},
		"torn":           good[:len(good)-3],
		"a payload byte": flipByte(good, len(good)-2),
		"the key":        flipByte(good, len(memoMagic)+1),
		"the magic":      flipByte(good, 0),
		"not a memo":     []byte(strings.Repeat("x", memoHeader+10)),
	} {
		if err := os.WriteFile(memo.Path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, wrote := loadBoth(t, memo); !wrote {
			t.Errorf("%s: the damaged memo was not replaced", name)
		}
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x20
	return c
}

func TestMemoSweepsACrashsTemporaryFiles(t *testing.T) {
	memo := memoFixture(t, map[string]string{
		"state.hcl":                "package \"htop\" {}\n",
		".state.memo.tmp-12345":    "left by a crash",
		".state.memo.tmp-6789.hcl": "left by a crash too",
	})
	if _, wrote := loadBoth(t, memo); !wrote {
		t.Fatal("the memo was not written")
	}
	if left, _ := filepath.Glob(".state.memo.tmp-*"); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if fi, err := os.Stat(memo.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("memo: %v, %v; want mode 0600", fi, err)
	}
}

func TestMemoKeepsOnlyCleanLoads(t *testing.T) {
	memo := memoFixture(t, map[string]string{"state.hcl": "package \"htop\" { version = 3 }\n"})
	_, wrote, _, err := LoadMachineMemo("state.hcl", "state.d", memo)
	var serr *Error
	if !errors.As(err, &serr) || wrote {
		t.Fatalf("LoadMachineMemo of a broken file: wrote %v, %v", wrote, err)
	}
	if _, err := os.Stat(memo.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed load wrote the memo: %v", err)
	}
	// The same error, word for word, as without the memo.
	_, plain := LoadMachine("state.hcl", "state.d")
	if plain == nil || err.Error() != plain.Error() {
		t.Errorf("errors differ:\n%v\n%v", err, plain)
	}
}

func TestMemoReadOnly(t *testing.T) {
	memo := memoFixture(t, map[string]string{"state.hcl": "package \"htop\" {}\n"})
	memo.Write = false
	if _, wrote := loadBoth(t, memo); wrote {
		t.Error("wrote with Write unset")
	}
	if _, err := os.Stat(memo.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("memo written with Write unset: %v", err)
	}
	// A memo that cannot be written is reported beside a good state.
	memo = Memo{Path: filepath.Join("no-such-dir", "state.memo"), Program: "test 1", Write: true}
	s, wrote, memoErr, err := LoadMachineMemo("state.hcl", "state.d", memo)
	if err != nil || wrote || memoErr == nil || len(s.Packages) != 1 {
		t.Errorf("unwritable memo: %d packages, wrote %v, memoErr %v, err %v", len(s.Packages), wrote, memoErr, err)
	}
	if left, _ := filepath.Glob(".state.memo.tmp-*"); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

package desired

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// addSeeds adds every .hcl file under testdata as a seed; the committed
// corpus in testdata/fuzz/<Name> adds the odd cases.
func addSeeds(f *testing.F) {
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".hcl") {
			return err
		}
		b, err := os.ReadFile(p)
		f.Add(b)
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
}

var firstLine = regexp.MustCompile(`^state\.hcl:[0-9]+:[0-9]+: \S`)

// FuzzLoad feeds arbitrary bytes to the state parser: it must never panic
// or hang, every problem must render with a "state.hcl:LINE:COL: " first
// line, and whatever it accepts must be a valid state.
func FuzzLoad(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		l := newLoader()
		l.addFile("state.hcl", src)
		s, err := l.result()
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, want *Error", err, err)
			}
			for _, m := range e.Messages() {
				if !firstLine.MatchString(m) {
					t.Errorf("first line %q does not start with state.hcl:LINE:COL", m)
				}
			}
			_ = e.Error()
			return
		}
		for name, w := range s.Packages {
			if err := name.Validate(); err != nil || w.Name != name {
				t.Errorf("accepted package %q (%q): %v", name, w.Name, err)
			}
			if w.Pos.File != "state.hcl" || w.Pos.Line < 1 || w.Pos.Col < 1 {
				t.Errorf("package %s at %v", name, w.Pos)
			}
			if w.Ensure == EnsureAbsent && (w.Hold || !w.Constraint.IsZero()) {
				t.Errorf("package %s: absent with hold or version accepted", name)
			}
			if w.Repo != "" {
				if err := ValidateRepoName(w.Repo); err != nil {
					t.Errorf("package %s: %v", name, err)
				}
			}
		}
		// The state memo gives back exactly what was parsed.
		back, err := decodeState(encodeState(s))
		if err != nil {
			t.Fatalf("decoding the memo of an accepted state: %v", err)
		}
		if diff := cmp.Diff(s, back); diff != "" {
			t.Errorf("through the memo (-parsed +memo):\n%s", diff)
		}
	})
}

// FuzzDecodeState feeds arbitrary payloads to the memo's decoder: it must
// never panic, and what it accepts must encode back to the same bytes (one
// encoding per state, so nothing is read that was not written).
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeState(State{}))
	f.Add(encodeState(State{Files: []string{"state.hcl"}, Packages: map[packages.Name]Want{
		"htop": {Name: "htop", Hold: true, Repo: "extra", Options: map[string]string{"a": "1", "b": ""},
			Constraint: packages.Constraint{Terms: []packages.Term{{Op: packages.OpGe, Version: "1.2"}}},
			Pos:        Pos{File: "state.hcl", Line: 3, Col: 1}},
		"nano": {Name: "nano", Ensure: EnsureAbsent, Pos: Pos{File: "state.hcl", Line: 9, Col: 1}},
	}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(b)
		if err != nil {
			return
		}
		if again := encodeState(s); !bytes.Equal(again, b) {
			t.Errorf("decoded %x, encodes back to %x", b, again)
		}
	})
}

// FuzzEdit runs install and remove on arbitrary files: an edit must never
// panic, never turn a file that parses into one that does not, must do what
// it says, and install then remove must give back a file that ends in one
// newline byte for byte.
func FuzzEdit(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		const name = packages.Name("fuzzpkg")
		sf, err := parseForEdit("state.hcl", src)
		if err != nil {
			return // edits refuse such files; FuzzLoad covers their parsing
		}
		appended := len(packageBlocks(sf, name)) == 0
		c := packages.Constraint{Terms: []packages.Term{{Op: packages.OpGe, Version: "1.0"}}}
		added, err := addToSource("state.hcl", src, name, c)
		if err != nil {
			t.Fatalf("addToSource: %v", err)
		}
		af, err := parseForEdit("state.hcl", added)
		if err != nil {
			t.Fatalf("addToSource broke the file:\n%s\n%v", added, err)
		}
		if len(packageBlocks(af, name)) == 0 {
			t.Fatalf("addToSource did not declare %s:\n%s", name, added)
		}
		removed, err := removeFromSource("state.hcl", added, name)
		if err != nil {
			t.Fatalf("removeFromSource: %v", err)
		}
		rf, err := parseForEdit("state.hcl", removed)
		if err != nil {
			t.Fatalf("removeFromSource broke the file:\n%s\n%v", removed, err)
		}
		if len(packageBlocks(rf, name)) != 0 {
			t.Fatalf("removeFromSource left %s:\n%s", name, removed)
		}
		norm := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
		if appended && bytes.HasSuffix(norm, []byte("\n")) && !bytes.HasSuffix(norm, []byte("\n\n")) &&
			len(bytes.TrimSpace(src)) > 0 && !bytes.Equal(removed, src) {
			t.Fatalf("install + remove changed the file:\n%q\nbecame\n%q", src, removed)
		}
	})
}

package desired

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// copyComments puts testdata/comments.hcl in a fresh directory.
func copyComments(t *testing.T) (path, original string) {
	t.Helper()
	original = readString(t, filepath.Join("testdata", "comments.hcl"))
	path = filepath.Join(t.TempDir(), "state.hcl")
	writeFiles(t, filepath.Dir(path), map[string]string{"state.hcl": original})
	return path, original
}

// TestEditKeepsEverything is the promise of install and remove: on a file
// full of comments and deliberate formatting, install then remove gives the
// file back byte for byte, and each step changes only its own block.
func TestEditKeepsEverything(t *testing.T) {
	for _, c := range []string{"", ">= 3.0, < 4"} {
		t.Run("constraint "+c, func(t *testing.T) {
			path, original := copyComments(t)
			changed, err := AddPackage(path, "htop", constraint(t, c))
			if err != nil || !changed {
				t.Fatalf("AddPackage = %v, %v", changed, err)
			}
			block := "package \"htop\" {}\n"
			if c != "" {
				block = "package \"htop\" {\n  version = \">= 3.0, < 4\"\n}\n"
			}
			if diff := cmp.Diff(original+"\n"+block, readString(t, path)); diff != "" {
				t.Errorf("after install (-want +got):\n%s", diff)
			}
			s, err := Load(path)
			if err != nil {
				t.Fatalf("Load after install: %v", err)
			}
			if diff := cmp.Diff(constraint(t, c), s.Packages["htop"].Constraint); diff != "" {
				t.Errorf("htop constraint (-want +got):\n%s", diff)
			}

			changed, err = RemovePackage(path, "htop")
			if err != nil || !changed {
				t.Fatalf("RemovePackage = %v, %v", changed, err)
			}
			if diff := cmp.Diff(original, readString(t, path)); diff != "" {
				t.Errorf("after install + remove (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAddExistingKeepsTheRest edits declared packages of the comment-heavy
// file: only the edited block changes (and is formatted canonically).
func TestAddExistingKeepsTheRest(t *testing.T) {
	tests := []struct {
		name     packages.Name
		c        string
		old, new string
	}{
		{"ripgrep", ">= 14.1",
			"package \"ripgrep\" {\n  # pinned: 14.1 broke the CI parser\n  version   =   local.rg\n  hold = true  # never upgrade in place\n}\n",
			"package \"ripgrep\" {\n  # pinned: 14.1 broke the CI parser\n  version = \">= 14.1\"\n  hold    = true # never upgrade in place\n}\n"},
		{"nano", "",
			"package \"nano\" {\n  ensure = \"absent\"   # removed on sight\n}\n",
			"package \"nano\" {}\n"},
		{"vim", "9.1",
			"package \"vim\" {}   # the one true editor\n",
			"package \"vim\" {\n  version = \"= 9.1\"\n}   # the one true editor\n"},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			path, original := copyComments(t)
			if !strings.Contains(original, tt.old) {
				t.Fatalf("testdata/comments.hcl lacks %q", tt.old)
			}
			if changed, err := AddPackage(path, tt.name, constraint(t, tt.c)); err != nil || !changed {
				t.Fatalf("AddPackage = %v, %v", changed, err)
			}
			want := strings.Replace(original, tt.old, tt.new, 1)
			if diff := cmp.Diff(want, readString(t, path)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if _, err := Load(path); err != nil {
				t.Errorf("Load after edit: %v", err)
			}
		})
	}
}

// TestRemoveExistingKeepsComments removes each declared package of the
// comment-heavy file and checks that exactly its block went.
func TestRemoveExistingKeepsComments(t *testing.T) {
	tests := []struct {
		name packages.Name
		cut  string // removed from the original
		put  string // and replaced by
	}{
		{"vim", "package \"vim\" {}   # the one true editor\n", "# the one true editor\n"},
		{"nano", "package \"nano\" {\n  ensure = \"absent\"   # removed on sight\n}\n", ""},
		{"ripgrep", "package \"ripgrep\" {\n  # pinned: 14.1 broke the CI parser\n  version   =   local.rg\n  hold = true  # never upgrade in place\n}\n\n", ""},
		{"nginx", "package \"nginx\" {\n  options = merge(local.common, {\n    worker_processes = 4 # per core\n  })\n}\n\n", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			path, original := copyComments(t)
			if !strings.Contains(original, tt.cut) {
				t.Fatalf("testdata/comments.hcl lacks %q", tt.cut)
			}
			if changed, err := RemovePackage(path, tt.name); err != nil || !changed {
				t.Fatalf("RemovePackage = %v, %v", changed, err)
			}
			want := strings.Replace(original, tt.cut, tt.put, 1)
			if diff := cmp.Diff(want, readString(t, path)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if _, err := Load(path); err != nil {
				t.Errorf("Load after remove: %v", err)
			}
		})
	}
}

func TestAddToSource(t *testing.T) {
	tests := []struct {
		name, src, pkg, c, want string
	}{
		{"new into empty", "", "htop", "", "package \"htop\" {}\n"},
		{"new into blanks", "\n\n", "htop", "", "package \"htop\" {}\n"},
		{"new after a file without final newline", "package \"a\" {}", "b", "", "package \"a\" {}\n\npackage \"b\" {}\n"},
		{"new after a blank line", "package \"a\" {}\n\n", "b", "", "package \"a\" {}\n\npackage \"b\" {}\n"},
		{"new with constraint", "# x\n", "rg", "14.0", "# x\n\npackage \"rg\" {\n  version = \"= 14.0\"\n}\n"},
		{"existing, no constraint: unchanged", "package \"a\" {\n  version = \"1\"\n}\n", "a", "", "package \"a\" {\n  version = \"1\"\n}\n"},
		{"existing, same constraint spelled otherwise: unchanged", "package \"a\" { version = \"1\" }\n", "a", "= 1", "package \"a\" { version = \"1\" }\n"},
		{"existing ensure present: unchanged", "package \"a\" {\n  ensure = \"present\"\n}\n", "a", "", "package \"a\" {\n  ensure = \"present\"\n}\n"},
		{"existing one-line, new version", "# top\npackage \"a\" {}  # why\n# next\n", "a", ">= 2",
			"# top\npackage \"a\" {\n  version = \">= 2\"\n}  # why\n# next\n"},
		{"existing one-line with an argument", "package \"a\" { hold = true }\n", "a", "2",
			"package \"a\" {\n  hold    = true\n  version = \"= 2\"\n}\n"},
		{"existing version replaced, comments in the block kept", "package \"a\" {\n  # pin\n  version = \"1\" # old\n  hold = true\n}\n\npackage   \"b\"   {}\n", "a", "2",
			"package \"a\" {\n  # pin\n  version = \"= 2\" # old\n  hold    = true\n}\n\npackage   \"b\"   {}\n"},
		{"ensure absent dropped", "package \"a\" {\n  ensure = \"absent\" # gone\n  repo = \"x\"\n}\n", "a", "",
			"package \"a\" {\n  repo = \"x\"\n}\n"},
		{"ensure from an expression dropped, the empty block folded", "locals {\n  e = \"absent\"\n}\npackage \"a\" {\n  ensure = local.e\n}\n", "a", "",
			"locals {\n  e = \"absent\"\n}\npackage \"a\" {}\n"},
		{"CRLF file stays CRLF", "# x\r\npackage \"a\" {}\r\n", "b", "1",
			"# x\r\npackage \"a\" {}\r\n\r\npackage \"b\" {\r\n  version = \"= 1\"\r\n}\r\n"},
		{"CRLF block edit", "package \"a\" {\r\n  ensure = \"absent\"\r\n  hold = false\r\n}\r\n", "a", "",
			"package \"a\" {\r\n  hold = false\r\n}\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := addToSource("state.hcl", []byte(tt.src), packages.Name(tt.pkg), constraint(t, tt.c))
			if err != nil {
				t.Fatalf("addToSource: %v", err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRemoveFromSource(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"only block", "package \"x\" {}\n", ""},
		{"only block, no newline", "package \"x\" {}", ""},
		{"between blank lines", "package \"a\" {}\n\npackage \"x\" {\n  hold = true\n}\n\npackage \"b\" {}\n", "package \"a\" {}\n\npackage \"b\" {}\n"},
		{"last, after a blank line", "package \"a\" {}\n\npackage \"x\" {}\n", "package \"a\" {}\n"},
		{"first, before a blank line", "package \"x\" {}\n\npackage \"a\" {}\n", "package \"a\" {}\n"},
		{"no blank lines", "package \"a\" {}\npackage \"x\" {}\npackage \"b\" {}\n", "package \"a\" {}\npackage \"b\" {}\n"},
		{"comment above stays", "# section\npackage \"x\" {}\n\npackage \"b\" {}\n", "# section\n\npackage \"b\" {}\n"},
		{"trailing comment stays", "package \"x\" {} # note\n", "# note\n"},
		{"indented", "  package \"x\" {}\npackage \"b\" {}\n", "package \"b\" {}\n"},
		{"duplicates all go", "package \"x\" {}\npackage \"b\" {}\npackage \"x\" {}\n", "package \"b\" {}\n"},
		{"CRLF", "package \"a\" {}\r\n\r\npackage \"x\" {}\r\n\r\npackage \"b\" {}\r\n", "package \"a\" {}\r\n\r\npackage \"b\" {}\r\n"},
		{"not declared", "package \"a\" {}\n# x\n", "package \"a\" {}\n# x\n"},
		{"other labels untouched", "package \"x\" \"y\" {}\nlocals {\n  x = 1\n}\n", "package \"x\" \"y\" {}\nlocals {\n  x = 1\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := removeFromSource("state.hcl", []byte(tt.src), "x")
			if err != nil {
				t.Fatalf("removeFromSource: %v", err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddPackageCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "packets", "state.hcl")
	changed, err := AddPackage(path, "htop", packages.Constraint{})
	if err != nil || !changed {
		t.Fatalf("AddPackage = %v, %v", changed, err)
	}
	if diff := cmp.Diff(newFileHeader+"\npackage \"htop\" {}\n", readString(t, path)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode(), err)
	}
	s, err := Load(path)
	if err != nil || len(s.Packages) != 1 {
		t.Errorf("Load = %v, %v", s, err)
	}
	// Removing from a missing file changes nothing and creates nothing.
	missing := filepath.Join(t.TempDir(), "state.hcl")
	if changed, err := RemovePackage(missing, "htop"); err != nil || changed {
		t.Errorf("RemovePackage(missing) = %v, %v", changed, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemovePackage created %s", missing)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestEditIsAtomic checks that an edit replaces the file by rename (a new
// inode: readers see the old or the new file, never a mix), keeps its mode,
// leaves no temporary file, and does not rewrite an unchanged file.
func TestEditIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.hcl")
	writeFiles(t, dir, map[string]string{"state.hcl": "package \"a\" {}\n"})
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	before := inode(t, path)
	if changed, err := AddPackage(path, "b", packages.Constraint{}); err != nil || !changed {
		t.Fatalf("AddPackage = %v, %v", changed, err)
	}
	after := inode(t, path)
	if before == after {
		t.Errorf("inode unchanged (%d): the file was written in place", before)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", fi.Mode().Perm())
	}
	if changed, err := AddPackage(path, "b", packages.Constraint{}); err != nil || changed {
		t.Errorf("AddPackage again = %v, %v; want unchanged", changed, err)
	}
	if changed, err := RemovePackage(path, "zzz"); err != nil || changed {
		t.Errorf("RemovePackage(undeclared) = %v, %v; want unchanged", changed, err)
	}
	if inode(t, path) != after {
		t.Errorf("an unchanged file was rewritten")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only state.hcl", entries)
	}
}

// TestEditFollowsSymlink: a state file linked into place stays linked; the
// edit lands in the link's target.
func TestEditFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"repo/state.hcl": "package \"a\" {}\n"})
	link := filepath.Join(dir, "state.hcl")
	if err := os.Symlink(filepath.Join("repo", "state.hcl"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := AddPackage(link, "b", packages.Constraint{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("state.hcl is no longer a link: %v, %v", fi.Mode(), err)
	}
	if got := readString(t, filepath.Join(dir, "repo", "state.hcl")); got != "package \"a\" {}\n\npackage \"b\" {}\n" {
		t.Errorf("target = %q", got)
	}
}

func TestEditRefusesBrokenFile(t *testing.T) {
	const broken = "package \"a\" {\n  version = \n}\n"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"state.hcl": broken})
	t.Chdir(dir)
	for name, edit := range map[string]func() (bool, error){
		"add":    func() (bool, error) { return AddPackage("state.hcl", "b", packages.Constraint{}) },
		"remove": func() (bool, error) { return RemovePackage("state.hcl", "a") },
	} {
		changed, err := edit()
		if changed {
			t.Errorf("%s changed a broken file", name)
		}
		want := []string{`state.hcl:2:13: Invalid expression: Expected the start of an expression, but found an invalid expression token.`}
		if diff := cmp.Diff(want, messages(t, err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if got := readString(t, "state.hcl"); got != broken {
		t.Errorf("broken file was modified: %q", got)
	}
	if _, err := AddPackage("state.hcl", "Bad", packages.Constraint{}); err == nil {
		t.Errorf("AddPackage accepted an invalid name")
	}
}

func TestFindDeclaration(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"state.hcl":        "package \"htop\" {}\n",
		"state.d/10-a.hcl": "package \"nginx\" {}\n",
	})
	t.Chdir(dir)
	tests := []struct {
		name     packages.Name
		wantFile string
		wantOK   bool
	}{
		{"htop", "state.hcl", true},
		{"nginx", "state.d/10-a.hcl", true},
		{"vim", "", false},
	}
	for _, tt := range tests {
		file, ok, err := FindDeclaration("state.hcl", "state.d", tt.name)
		if err != nil || file != tt.wantFile || ok != tt.wantOK {
			t.Errorf("FindDeclaration(%s) = %q, %v, %v; want %q, %v", tt.name, file, ok, err, tt.wantFile, tt.wantOK)
		}
	}
	writeFiles(t, dir, map[string]string{"state.d/20-broken.hcl": "package {"})
	if _, _, err := FindDeclaration("state.hcl", "state.d", "vim"); err == nil {
		t.Errorf("FindDeclaration ignored a broken drop-in")
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		arg      string
		wantName packages.Name
		wantC    string
		wantErr  bool
	}{
		{"htop", "htop", "", false},
		{"ripgrep@14.1.0", "ripgrep", "= 14.1.0", false},
		{"ripgrep@>=14, <15", "ripgrep", ">= 14, < 15", false},
		{"ripgrep@", "", "", true},
		{"Ripgrep@1", "", "", true},
		{"ripgrep@>= 1 2", "", "", true},
		{"", "", "", true},
	}
	for _, tt := range tests {
		n, c, err := ParseSpec(tt.arg)
		if (err != nil) != tt.wantErr || n != tt.wantName || c.String() != tt.wantC {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q, error %v", tt.arg, n, c, err, tt.wantName, tt.wantC, tt.wantErr)
		}
	}
}

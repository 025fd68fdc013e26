package desired

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/packets-dev/packets/packages"
)

// writeFiles creates files (relative path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadString loads src as "state.hcl" from the current directory, so that
// positions read "state.hcl:L:C" as an administrator would see them.
func loadString(t *testing.T, src string) (State, error) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"state.hcl": src})
	t.Chdir(dir)
	return Load("state.hcl")
}

func constraint(t *testing.T, s string) packages.Constraint { return constraintOf(t, s) }

func constraintOf(t testing.TB, s string) packages.Constraint {
	t.Helper()
	c, err := packages.ParseConstraint(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadValid(t *testing.T) {
	at := func(line int) Pos { return Pos{File: "state.hcl", Line: line, Col: 1} }
	tests := []struct {
		name string
		src  string
		want func(t *testing.T) map[packages.Name]Want
	}{
		{"empty file", "", nil},
		{"only blanks", "\n\n  \t\n", nil},
		{"only comments", "# hash\n// slashes\n/* block\n comment */\n", nil},
		{"design example", `package "htop" {}

package "ripgrep" {
  version = ">= 14.0"      # constraint; absent means newest in the synced index
  hold    = true            # never upgrade in place
}

package "nano" {
  ensure = "absent"         # remove if present, and never install as a dependency
}

package "nginx" {
  options = { worker_processes = "4" }   # handed to the hooks as the table options
}
`, func(t *testing.T) map[packages.Name]Want {
			return map[packages.Name]Want{
				"htop":    {Name: "htop", Pos: at(1)},
				"ripgrep": {Name: "ripgrep", Constraint: constraint(t, ">= 14.0"), Hold: true, Pos: at(3)},
				"nano":    {Name: "nano", Ensure: EnsureAbsent, Pos: at(8)},
				"nginx":   {Name: "nginx", Options: map[string]string{"worker_processes": "4"}, Pos: at(12)},
			}
		}},
		{"explicit present, repo, and every option type", `package "nginx" {
  ensure  = "present"
  repo    = "extra-2"
  hold    = false
  options = {
    workers = 4
    ratio   = 0.5
    debug   = true
    name    = "web"
    unset   = null
    "quoted key" = <<-EOT
      line one
      line two
    EOT
  }
}
`, func(t *testing.T) map[packages.Name]Want {
			return map[packages.Name]Want{"nginx": {Name: "nginx", Repo: "extra-2", Pos: at(1), Options: map[string]string{
				"workers": "4", "ratio": "0.5", "debug": "true", "name": "web", "quoted key": "line one\nline two\n",
			}}}
		}},
		{"locals and functions", `package "ripgrep" {
  version = local.rg       # used before it is declared
  options = merge(local.common, { mode = upper(local.mode) })
}

locals {
  rg     = join(", ", concat([">= ${local.major}.0"], ["< 15"]))
  major  = 14
  mode   = lower(trimspace("  Fast "))
  common = { log = format("%s-%03d", "info", 7), level = coalesce(null, "warn") }
}

locals {
  pin = false
}

package "fd" {
  version = local.pin ? "9.0.0" : null   # null: no constraint
  hold    = !local.pin
}
`, func(t *testing.T) map[packages.Name]Want {
			return map[packages.Name]Want{
				"ripgrep": {Name: "ripgrep", Constraint: constraint(t, ">= 14.0, < 15"), Pos: at(1),
					Options: map[string]string{"log": "info-007", "level": "warn", "mode": "FAST"}},
				"fd": {Name: "fd", Hold: true, Pos: at(17)},
			}
		}},
		{"attributes set to null are unset", `package "a" {
  version = null
  hold    = null
  ensure  = null
  repo    = null
  options = { x = null }
}
`, func(*testing.T) map[packages.Name]Want {
			return map[packages.Name]Want{"a": {Name: "a", Pos: at(1)}}
		}},
		{"one-line blocks and odd spacing", "package \"a\" { version = \"1.0\" }\n  package   \"b.c+d_e-f\"   {\n}\n",
			func(t *testing.T) map[packages.Name]Want {
				return map[packages.Name]Want{
					"a":         {Name: "a", Constraint: constraint(t, "1.0"), Pos: at(1)},
					"b.c+d_e-f": {Name: "b.c+d_e-f", Pos: Pos{File: "state.hcl", Line: 2, Col: 3}},
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadString(t, tt.src)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := State{Packages: map[packages.Name]Want{}, Files: []string{"state.hcl"}}
			if tt.want != nil {
				want.Packages = tt.want(t)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMachine(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"state.hcl":             "package \"htop\" {}\n",
		"state.d/20-dev.hcl":    "package \"gdb\" {}\n",
		"state.d/10-web.hcl":    "locals { w = 8 }\npackage \"nginx\" { options = { workers = local.w } }\n",
		"state.d/.#20-dev.hcl":  "this is an editor lock, not HCL",
		"state.d/.hidden.hcl":   "not read either",
		"state.d/30-old.hcl~":   "package \"old\" {}\n",
		"state.d/40-x.hcl.swp":  "binary",
		"state.d/notes.txt":     "package \"notes\" {}\n",
		"state.d/sub.hcl/a.hcl": "package \"nested\" {}\n",
		"elsewhere/linked.hcl":  "package \"linked\" {}\n",
	})
	if err := os.Symlink(filepath.Join(dir, "elsewhere/linked.hcl"), filepath.Join(dir, "state.d/50-linked.hcl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing.hcl", filepath.Join(dir, "state.d/60-dangling.hcl")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	got, err := LoadMachine("state.hcl", "state.d")
	if err != nil {
		t.Fatalf("LoadMachine: %v", err)
	}
	wantFiles := []string{"state.hcl", "state.d/10-web.hcl", "state.d/20-dev.hcl", "state.d/50-linked.hcl"}
	if diff := cmp.Diff(wantFiles, got.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]packages.Name{"gdb", "htop", "linked", "nginx"}, got.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	want := Want{Name: "nginx", Options: map[string]string{"workers": "8"}, Pos: Pos{File: "state.d/10-web.hcl", Line: 2, Col: 1}}
	if diff := cmp.Diff(want, got.Packages["nginx"]); diff != "" {
		t.Errorf("nginx (-want +got):\n%s", diff)
	}
}

func TestLoadMachineMissing(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		files    map[string]string
		wantPkgs []packages.Name
	}{
		{"both missing", nil, nil},
		{"only the main file", map[string]string{"state.hcl": `package "a" {}`}, []packages.Name{"a"}},
		{"only drop-ins", map[string]string{"state.d/x.hcl": `package "b" {}`}, []packages.Name{"b"}},
		{"empty main file and empty drop-in dir", map[string]string{"state.hcl": "", "state.d/README": "x"}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(dir, string(rune('a'+i)))
			writeFiles(t, root, tt.files)
			got, err := LoadMachine(filepath.Join(root, "state.hcl"), filepath.Join(root, "state.d"))
			if err != nil {
				t.Fatalf("LoadMachine: %v", err)
			}
			if diff := cmp.Diff(tt.wantPkgs, got.Names()); diff != "" {
				t.Errorf("Names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadDirectoryAndIOErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"b.hcl": `package "b" {}`, "a.hcl": `package "a" {}`})
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load(dir): %v", err)
	}
	wantFiles := []string{filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")}
	if diff := cmp.Diff(wantFiles, got.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}

	// A path the caller names must exist; that is an I/O error, not a
	// diagnostic.
	_, err = Load(filepath.Join(dir, "missing.hcl"))
	var de *Error
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &de) {
		t.Errorf("Load(missing) = %v, want a wrapped fs.ErrNotExist", err)
	}
	// A main "file" that is a directory is a mistake worth reporting.
	if _, err := LoadMachine(dir, ""); err == nil {
		t.Errorf("LoadMachine(dir as main file) succeeded")
	}
}

func TestEnsureAndPos(t *testing.T) {
	for _, tt := range []struct {
		e    Ensure
		want string
	}{{EnsurePresent, "present"}, {EnsureAbsent, "absent"}, {Ensure(7), "Ensure(7)"}} {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("Ensure(%d).String() = %q, want %q", tt.e, got, tt.want)
		}
	}
	if b, err := EnsureAbsent.MarshalText(); err != nil || string(b) != "absent" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
	if _, err := Ensure(7).MarshalText(); err == nil {
		t.Errorf("MarshalText(7) succeeded")
	}
	p := Pos{File: "state.hcl", Line: 3, Col: 1}
	if p.String() != "state.hcl:3:1" || p.FileLine() != "state.hcl:3" {
		t.Errorf("Pos = %q, %q", p.String(), p.FileLine())
	}
}

func TestValidateRepoName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"extra", true}, {"extra-2_b", true}, {"9lives", true},
		{"", false}, {"-x", false}, {"Extra", false}, {"a.b", false}, {"a/b", false},
		{strings.Repeat("a", 65), false},
	} {
		if err := ValidateRepoName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateRepoName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestTestdataValid loads every testdata/valid file; each names the
// packages it declares on its first line ("# want: a b c").
func TestTestdataValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.hcl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/valid files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src := readString(t, f)
			first, _, _ := strings.Cut(src, "\n")
			want, ok := strings.CutPrefix(first, "# want:")
			if !ok {
				t.Fatalf("first line %q lacks \"# want:\"", first)
			}
			s, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []string
			for _, n := range s.Names() {
				got = append(got, string(n))
			}
			if diff := cmp.Diff(strings.Fields(want), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

package desired

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// messages returns the first lines of the diagnostics of a failed load.
func messages(t *testing.T, err error) []string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	return e.Messages()
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"syntax error", "package \"a\" {\n  version = \n}\n", []string{
			`state.hcl:2:13: Invalid expression: Expected the start of an expression, but found an invalid expression token.`,
		}},
		{"unknown attribute with suggestion", "package \"a\" {\n  verison = \"1\"\n}\n", []string{
			`state.hcl:2:3: Unsupported argument: An argument named "verison" is not expected in a package block. Did you mean "version"?`,
		}},
		{"unknown attribute without suggestion", "package \"a\" {\n  color = \"red\"\n}\n", []string{
			`state.hcl:2:3: Unsupported argument: An argument named "color" is not expected in a package block. The arguments are "version", "hold", "ensure", "options" and "repo".`,
		}},
		{"attribute defined twice", "package \"a\" {\n  hold = true\n  hold = false\n}\n", []string{
			`state.hcl:3:3: Attribute redefined: The argument "hold" was already set at state.hcl:2,3-7. Each argument may be set only once.`,
		}},
		{"top-level attribute", "mirror = \"x\"\n", []string{
			`state.hcl:1:1: Unsupported argument: An argument named "mirror" is not expected at the top level of a state file, which holds only package "NAME" {...} and locals {...} blocks.`,
		}},
		{"misspelled block type", "pakage \"a\" {}\n", []string{
			`state.hcl:1:1: Unsupported block type: Blocks of type "pakage" are not expected at the top level of a state file. Did you mean "package"?`,
		}},
		{"unknown block type", "repository \"a\" {}\n", []string{
			`state.hcl:1:1: Unsupported block type: Blocks of type "repository" are not expected at the top level of a state file. The block types are "package" and "locals".`,
		}},
		{"options as a block", "package \"a\" {\n  options {\n    x = 1\n  }\n}\n", []string{
			`state.hcl:2:3: Unsupported block type: Blocks of type "options" are not expected in a package block. Did you mean to set the argument "options"? If so, use the equals sign: options = ...`,
		}},
		{"missing label", "package {}\n", []string{
			`state.hcl:1:1: Missing package name: A package block needs exactly one label, the package name, as in package "htop" {}.`,
		}},
		{"two labels", "package \"a\" \"b\" {}\n", []string{
			`state.hcl:1:13: Extraneous label for package: A package block has exactly one label, the package name; "b" is one too many.`,
		}},
		{"invalid name", "package \"Htop\" {}\n", []string{
			`state.hcl:1:9: Invalid package name: package name "Htop": character 'H' at 0 is not allowed (use a-z, 0-9 and ._+-, starting with a letter or digit).`,
		}},
		{"bad version constraint", "package \"a\" {\n  version = \">= 1 2\"\n}\n", []string{
			`state.hcl:2:13: Invalid version constraint: constraint ">= 1 2": version "1 2": character ' ' is not allowed; write a version ("3.3.0") or comparisons joined by commas (">= 1.2, < 2").`,
		}},
		{"version not a string", "package \"a\" {\n  version = 14\n}\n", []string{
			`state.hcl:2:13: Incorrect attribute value type: Inappropriate value for attribute "version": string required, got number. Quote it: version = "14".`,
		}},
		{"hold not a bool", "package \"a\" {\n  hold = \"yes\"\n}\n", []string{
			`state.hcl:2:10: Incorrect attribute value type: Inappropriate value for attribute "hold": bool required, got string.`,
		}},
		{"bad ensure", "package \"a\" {\n  ensure = \"gone\"\n}\n", []string{
			`state.hcl:2:12: Invalid ensure value: ensure must be "present" or "absent", not "gone".`,
		}},
		{"misspelled ensure", "package \"a\" {\n  ensure = \"absnet\"\n}\n", []string{
			`state.hcl:2:12: Invalid ensure value: ensure must be "present" or "absent", not "absnet". Did you mean "absent"?`,
		}},
		{"bad repo", "package \"a\" {\n  repo = \"Extra/1\"\n}\n", []string{
			`state.hcl:2:10: Invalid repository name: repository name "Extra/1": character 'E' at 0 is not allowed (use a-z, 0-9, - and _, starting with a letter or digit).`,
		}},
		{"options not an object", "package \"a\" {\n  options = [\"x\"]\n}\n", []string{
			`state.hcl:2:13: Incorrect attribute value type: Inappropriate value for attribute "options": an object such as { workers = 4 } required, got tuple.`,
		}},
		{"nested option", "package \"a\" {\n  options = { ok = 1, deep = { x = 1 } }\n}\n", []string{
			`state.hcl:2:30: Invalid option: option "deep" must be a string, number or bool, got object.`,
		}},
		{"hold with absent", "package \"a\" {\n  ensure = \"absent\"\n  hold   = true\n}\n", []string{
			`state.hcl:3:3: Conflicting attributes: hold = true keeps a package installed, but ensure = "absent" (at state.hcl:2:3) removes it; drop one of them.`,
		}},
		{"version with absent", "package \"a\" {\n  version = \"1\"\n  ensure  = \"absent\"\n}\n", []string{
			`state.hcl:2:3: Conflicting attributes: version constrains what to install, but ensure = "absent" (at state.hcl:3:3) removes the package; drop one of them.`,
		}},
		{"duplicate in one file", "package \"a\" {}\n\npackage \"a\" {\n  hold = true\n}\n", []string{
			`state.hcl:3:1: Duplicate package: package "a" is already declared at state.hcl:1:1; declare each package once across the state files.`,
		}},
		{"undeclared local", "locals {\n  major = 14\n}\npackage \"a\" {\n  version = local.mjor\n}\n", []string{
			`state.hcl:5:13: Reference to undeclared local value: A local value named "mjor" is not declared in this file (locals are visible only in the file that declares them). Did you mean "major"?`,
		}},
		{"unknown variable", "package \"a\" {\n  version = var.v\n}\n", []string{
			`state.hcl:2:13: Unknown variable: There is no variable named "var"; a state file can refer only to its own locals, as local.NAME.`,
		}},
		{"local cycle", "locals {\n  a = local.b\n  b = \"${local.a}x\"\n}\n", []string{
			`state.hcl:2:3: Cycle in local values: local.a depends on itself: local.a → local.b → local.a.`,
		}},
		{"duplicate local", "locals {\n  a = 1\n}\nlocals {\n  a = 2\n}\n", []string{
			`state.hcl:5:3: Duplicate local value: A local value named "a" is already declared at state.hcl:2:3; each local of a file needs its own name.`,
		}},
		{"labelled locals", "locals \"x\" {\n  a = 1\n}\n", []string{
			`state.hcl:1:8: Extraneous label for locals: A locals block has no labels: locals { name = value }.`,
		}},
		{"unknown function", "package \"a\" {\n  version = lowr(\"X\")\n}\n", []string{
			`state.hcl:2:13: Call to unknown function: There is no function named "lowr". Did you mean "lower"?`,
		}},
		{"for expression", "package \"a\" {\n  options = { for k in [\"x\"] : k => k }\n}\n", []string{
			`state.hcl:2:13: Unsupported expression: for expressions are not supported in state files; write the values out.`,
		}},
		{"huge number", "package \"a\" {\n  options = { n = 1e99999999 }\n}\n", []string{
			`state.hcl:2:19: Number out of range: a number around 1e+99999999 is outside the supported range of magnitudes 1e-18 to 1e18.`,
		}},
		{"format width bomb", "package \"a\" {\n  version = format(\"%999999999d\", 1)\n}\n", []string{
			`state.hcl:2:13: Error in function call: Call to function "format" failed: format widths and precisions are limited to 1000.`,
		}},
		{"doubling locals stop at the value limit", "locals {\n" + doublingLocals(20) + "}\n", []string{
			`state.hcl:17:9: Value too large: the value is larger than 65536 bytes and elements.`,
		}},
		{"every problem at once, in reading order", "package \"a\" {\n  verison = \"1\"\n  hold = 1\n}\npackage \"B\" {}\n", []string{
			`state.hcl:2:3: Unsupported argument: An argument named "verison" is not expected in a package block. Did you mean "version"?`,
			`state.hcl:3:10: Incorrect attribute value type: Inappropriate value for attribute "hold": bool required, got number.`,
			`state.hcl:5:9: Invalid package name: package name "B": character 'B' at 0 is not allowed (use a-z, 0-9 and ._+-, starting with a letter or digit).`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadString(t, tt.src)
			if diff := cmp.Diff(tt.want, messages(t, err)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// doublingLocals declares n locals, each twice as long as the one before.
func doublingLocals(n int) string {
	var b strings.Builder
	b.WriteString("  l0 = \"xxxx\"\n")
	for i := 1; i < n; i++ {
		b.WriteString("  l" + strconv.Itoa(i) + " = \"${local.l" + strconv.Itoa(i-1) + "}${local.l" + strconv.Itoa(i-1) + "}\"\n")
	}
	return b.String()
}

func TestDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"state.hcl":          "package \"htop\" {}\n\npackage \"nginx\" {}\n",
		"state.d/10-a.hcl":   "# web\npackage \"nginx\" {\n  hold = true\n}\n",
		"state.d/20-b.hcl":   "package \"htop\" {}\npackage \"ok\" {}\n",
		"state.d/30-bad.hcl": "package \"x\" {\n  hold = \"no\"\n}\n",
	})
	t.Chdir(dir)
	_, err := LoadMachine("state.hcl", "state.d")
	want := []string{
		`state.d/10-a.hcl:2:1: Duplicate package: package "nginx" is already declared at state.hcl:3:1; declare each package once across the state files.`,
		`state.d/20-b.hcl:1:1: Duplicate package: package "htop" is already declared at state.hcl:1:1; declare each package once across the state files.`,
		`state.d/30-bad.hcl:2:10: Incorrect attribute value type: Inappropriate value for attribute "hold": bool required, got string.`,
	}
	if diff := cmp.Diff(want, messages(t, err)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// TestErrorRendering pins the whole text of an *Error: first lines, source
// snippets with carets (also after tabs and wide characters), separators.
func TestErrorRendering(t *testing.T) {
	golden, err := filepath.Abs(filepath.Join("testdata", "errors.golden"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "errors.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = loadString(t, string(src))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load = %v, want *Error", err)
	}
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) || len(diags) != len(e.Diags) {
		t.Errorf("errors.As(hcl.Diagnostics) did not reach the diagnostics")
	}
	got := e.Error() + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./desired -run TestErrorRendering -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("rendering (-want +got):\n%s", diff)
	}
	// The contract: every diagnostic's first line starts the block.
	for _, m := range e.Messages() {
		if !strings.Contains(got, m+"\n  ") {
			t.Errorf("rendering lacks first line %q followed by a snippet", m)
		}
	}
}

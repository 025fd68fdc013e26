package desired

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// state1000 returns a state file of n packages in the shapes real files
// use: bare blocks, constraints, holds, absent packages, options, locals.
func state1000(n int) string {
	var b strings.Builder
	b.WriteString("# generated\nlocals {\n  floor  = \">= 1.0\"\n  common = { log = \"info\" }\n}\n\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "package \"pkg-%04d\" {}\n\n", i)
		case 1:
			fmt.Fprintf(&b, "package \"pkg-%04d\" {\n  version = \">= %d.0, < %d\" # pinned\n  hold    = true\n}\n\n", i, i, i+1)
		case 2:
			fmt.Fprintf(&b, "package \"pkg-%04d\" {\n  ensure = \"absent\"\n}\n\n", i)
		default:
			fmt.Fprintf(&b, "package \"pkg-%04d\" {\n  version = local.floor\n  options = merge(local.common, { workers = %d })\n}\n\n", i, i%16)
		}
	}
	return b.String()
}

func BenchmarkLoad1000(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.hcl")
	src := state1000(1000)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		s, err := Load(path)
		if err != nil || len(s.Packages) != 1000 {
			b.Fatalf("Load = %d packages, %v", len(s.Packages), err)
		}
	}
}

func BenchmarkAddRemove1000(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.hcl")
	if err := os.WriteFile(path, []byte(state1000(1000)), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := AddPackage(path, "htop", constraintOf(b, ">= 3")); err != nil {
			b.Fatal(err)
		}
		if _, err := RemovePackage(path, "htop"); err != nil {
			b.Fatal(err)
		}
	}
}

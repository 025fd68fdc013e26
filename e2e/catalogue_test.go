package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyPlansAsPlanDoes: with enough packages installed, apply reads the
// indexes whole and plans over all of them, beside installed.db, while plan
// reads only what the state and the installed packages reach. Both must
// come to the same plan, here one with upgrades along families (a rename
// among them), dependencies, installs and removals.
func TestApplyPlansAsPlanDoes(t *testing.T) {
	bin, err := exec.LookPath("packets") // testscript put this test binary on $PATH as packets
	if err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, bin: bin, root: filepath.Join(t.TempDir(), "root")}
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	const n = 80 // above the 64 names from which an index is read whole
	build := func(name, version string, family, serial int, deps ...string) {
		src := filepath.Join(work, fmt.Sprintf("%s-%d", name, serial))
		manifest := fmt.Sprintf("[Info]\nname = %q\nversion = %q\nfamily = \"00000000-0000-4000-8000-%012d\"\nserial = %d\n", name, version, family, serial)
		if len(deps) > 0 {
			manifest = strings.Replace(manifest, "\nfamily", fmt.Sprintf("\ndependencies = [%q]\nfamily", strings.Join(deps, `", "`)), 1)
		}
		mustWriteFile(t, filepath.Join(src, "manifest.toml"), manifest)
		mustWriteFile(t, filepath.Join(src, "data/share", name, "README"), name+" "+version+"\n")
		s.mustRun("build", src, "-o", filepath.Join(repo, "packages", filepath.Base(src)+".tar.zst"))
	}
	for i := range n {
		name := fmt.Sprintf("w%02d", i)
		var deps []string
		if i%5 == 0 {
			deps = append(deps, fmt.Sprintf("w%02d >= 1.0", i+1))
		}
		build(name, "1.0", i, 1, deps...)
		if i%3 == 0 {
			build(name, "2.0", i, 2, deps...)
		}
	}
	build("w79-renamed", "3.0", 79, 3) // w79's family goes on under a new name
	build("extra", "1.0", 100, 1, "w10 >= 1.0")
	s.publish(work, repo)

	var before, after strings.Builder
	for i := range n {
		fmt.Fprintf(&before, "package \"w%02d\" { version = \"= 1.0\" }\n", i)
		switch {
		case i < 60 || i == 79: // free to upgrade
			fmt.Fprintf(&after, "package \"w%02d\" {}\n", i)
		case i < 70: // dropped: removed unless a dependency
		default:
			fmt.Fprintf(&after, "package \"w%02d\" { version = \"= 1.0\" }\n", i)
		}
	}
	after.WriteString("package \"extra\" {}\n")
	s.writeState(before.String())
	s.mustRun("apply", "--yes")

	s.writeState(after.String())
	plan := s.mustRun("plan")
	for _, want := range []string{"to install", "to upgrade", "to remove", "w79-renamed", "extra"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("the plan lacks %q; the test no longer covers what it should:\n%s", want, plan)
		}
	}
	applied := s.mustRun("--debug", "apply", "--yes")
	if !strings.Contains(applied, "catalogue: every index read whole") {
		t.Fatalf("apply did not read the index whole:\n%s", applied)
	}
	if !strings.Contains(applied, plan) {
		t.Errorf("apply planned otherwise than plan.\nplan:\n%s\napply:\n%s", plan, applied)
	}
	if out := s.mustRun("plan"); !strings.Contains(out, "No changes") {
		t.Errorf("after apply, plan still has changes:\n%s", out)
	}
}

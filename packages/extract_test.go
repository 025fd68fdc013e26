package packages

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExtractRoundTrip builds the demo tree, extracts it under a hostile
// umask, publishes it, and wants the same tree back: modes (setuid and
// sticky included), contents, symlinks and the hard link. It does so into
// a fresh package dir (the tree is staged whole, below a hidden sibling)
// and into an existing, empty one (each file under its own temporary).
func TestExtractRoundTrip(t *testing.T) {
	src := demoSource(t)
	archive := buildBytes(t, src)
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "whole", false: "per file"}[whole], func(t *testing.T) {
			sb := newSandbox(t)
			dest := filepath.Join(sb.outer, "root", testDest)
			var wantNew []string
			if whole {
				wantNew = []string{"opt/packets/demo", testDest}
			} else {
				must(t, os.MkdirAll(dest, 0o755))
			}
			for _, d := range []string{"bin", "empty", "etc", "lib", "private", "share", "share/doc", "tmp"} {
				wantNew = append(wantNew, testDest+"/"+d)
			}

			old := syscall.Umask(0o077) // the umask must not matter
			st, err := sb.extract(archive, Limits{})
			syscall.Umask(old)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			checkStaged(t, sb, st, whole)
			if diff := cmp.Diff(wantNew, st.NewDirs); diff != "" {
				t.Errorf("NewDirs (-want +got):\n%s", diff)
			}

			must(t, SyncFS(sb.root))
			old = syscall.Umask(0o077)
			err = st.Publish(sb.root, nil)
			syscall.Umask(old)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			must(t, SyncFS(sb.root))
			if diff := cmp.Diff(snapshot(t, filepath.Join(src, "data")), snapshot(t, dest)); diff != "" {
				t.Errorf("published tree (-source +published):\n%s", diff)
			}
			for _, f := range st.Files {
				fi, err := sb.root.Lstat(f.Final)
				if f.Type == TypeFile && (err != nil || !fi.ModTime().Equal(f.MTime)) {
					t.Errorf("%s: published mtime %v (%v), staged %v", f.Final, fi.ModTime(), err, f.MTime)
				}
			}
			a, _ := os.Stat(filepath.Join(dest, "bin/demo"))
			b, _ := os.Stat(filepath.Join(dest, "bin/demo-alias"))
			if a == nil || b == nil || !os.SameFile(a, b) {
				t.Error("bin/demo-alias is not a hard link to bin/demo")
			}
			for p := range snapshot(t, filepath.Join(sb.outer, "root")) {
				if strings.Contains(p, TempPrefix) {
					t.Errorf("%s left after Publish", p)
				}
			}
		})
	}
}

// checkStaged checks that nothing of st is at a final name yet: a tree
// staged whole is below TempName(Top, tag, 0) beside Top; otherwise each
// non-directory has a temporary beside its final name.
func checkStaged(t *testing.T, sb *sandbox, st *Staged, whole bool) {
	t.Helper()
	if len(st.Files) != len(st.Contents.Entries) {
		t.Fatalf("%d staged files for %d entries", len(st.Files), len(st.Contents.Entries))
	}
	if whole {
		if st.Top != "opt/packets/demo" || st.TopTemp != "opt/packets/.pk-tx1-0" {
			t.Errorf("Top %q, TopTemp %q", st.Top, st.TopTemp)
		}
		if _, err := sb.root.Lstat(st.Top); err == nil {
			t.Errorf("%s exists before Publish", st.Top)
		}
	} else if st.Top != "" || st.TopTemp != "" {
		t.Errorf("Top %q, TopTemp %q over an existing Dest", st.Top, st.TopTemp)
	}
	for i, f := range st.Files {
		if diff := cmp.Diff(st.Contents.Entries[i], f.Entry); diff != "" {
			t.Errorf("Files[%d].Entry (-want +got):\n%s", i, diff)
		}
		if want := path.Join(testDest, strings.TrimPrefix(f.Path, "data/")); f.Final != want {
			t.Errorf("Final = %q, want %q", f.Final, want)
		}
		at := f.Temp
		if whole {
			if f.Temp != "" {
				t.Errorf("Temp %q for %q in a tree staged whole", f.Temp, f.Final)
			}
			at = st.TopTemp + strings.TrimPrefix(f.Final, st.Top)
		} else if f.Type == TypeDir {
			at = f.Final
		}
		if got := st.At(f); got != at {
			t.Errorf("At(%s) = %q, want %q", f.Final, got, at)
		}
		if !whole && f.Type == TypeDir {
			continue
		}
		if !whole && (!strings.HasPrefix(path.Base(f.Temp), ".pk-tx1-") || path.Dir(f.Temp) != path.Dir(f.Final)) {
			t.Errorf("Temp %q for %q", f.Temp, f.Final)
		}
		if _, err := sb.root.Lstat(at); err != nil {
			t.Errorf("%s is not staged at %s: %v", f.Final, at, err)
		}
		if _, err := sb.root.Lstat(f.Final); err == nil && (whole || f.Type != TypeDir) {
			t.Errorf("%s exists before Publish", f.Final)
		}
	}
}

// TestPublishWhole: skip redirects and drops files of a tree staged whole,
// and a Top that appeared between Extract and Publish is never replaced.
func TestPublishWhole(t *testing.T) {
	archive := buildBytes(t, demoSource(t))
	t.Run("skip", func(t *testing.T) {
		sb := newSandbox(t)
		st, err := sb.extract(archive, Limits{})
		must(t, err)
		err = st.Publish(sb.root, func(f StagedFile) (string, bool) {
			switch f.Path {
			case "data/etc/demo.conf":
				return f.Final + ".packets-new", true
			case "data/share/doc/README":
				return "", true
			}
			return "", false
		})
		must(t, err)
		snap := snapshot(t, filepath.Join(sb.outer, "root", testDest))
		if _, ok := snap["etc/demo.conf.packets-new"]; !ok {
			t.Error("etc/demo.conf.packets-new was not published")
		}
		for _, p := range []string{"etc/demo.conf", "share/doc/README"} {
			if _, ok := snap[p]; ok {
				t.Errorf("%s published", p)
			}
		}
	})
	t.Run("top appeared", func(t *testing.T) {
		sb := newSandbox(t)
		st, err := sb.extract(archive, Limits{})
		must(t, err)
		must(t, sb.root.Mkdir(st.Top, 0o700)) // empty: a plain rename would replace it
		err = st.Publish(sb.root, nil)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Publish over a new %s: %v, want fs.ErrExist", st.Top, err)
		}
		must(t, st.Discard(sb.root))
		want := map[string]string{".": "drwxr-xr-x", "demo": "drwx------"} // the dir made meanwhile, untouched
		if diff := cmp.Diff(want, snapshot(t, filepath.Join(sb.outer, "root", "opt/packets"))); diff != "" {
			t.Errorf("after Discard (-want +got):\n%s", diff)
		}
	})
}

func TestExtractDiscard(t *testing.T) {
	archive := buildBytes(t, demoSource(t))
	sb := newSandbox(t)
	before := snapshot(t, sb.outer)
	st, err := sb.extract(archive, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, st.Discard(sb.root))
	wantUnchanged(t, before, snapshot(t, sb.outer))
	must(t, st.Discard(sb.root)) // again: nothing left to remove is not an error
}

// TestExtractOverExisting publishes over an older version of the package:
// files are replaced, a symlink is replaced by a file, and Publish's skip
// redirects the config file the user edited.
func TestExtractOverExisting(t *testing.T) {
	archive := buildBytes(t, demoSource(t))
	sb := newSandbox(t)
	dest := filepath.Join(sb.outer, "root", testDest)
	writeFile(t, dest, "etc/demo.conf", "edited by the admin\n", 0o600)
	writeFile(t, dest, "bin/old-only", "stays\n", 0o755)
	must(t, os.Symlink("elsewhere", filepath.Join(dest, "bin/demo")))

	st, err := sb.extract(archive, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.NewDirs) != 6 { // only lib, share, share/doc, empty, private, tmp are new
		t.Errorf("NewDirs = %q", st.NewDirs)
	}
	var asked []string
	err = st.Publish(sb.root, func(f StagedFile) (string, bool) {
		asked = append(asked, f.Path)
		if st.Contents.Manifest.IsConfig(f.Path) {
			return f.Final + ".packets-new", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 10 { // every non-directory
		t.Errorf("skip asked about %q", asked)
	}
	snap := snapshot(t, dest)
	for p, want := range map[string]string{
		"etc/demo.conf":             "-rw------- " + hash6("edited by the admin\n"),
		"etc/demo.conf.packets-new": "-rw------- " + hash6("key = value\n"),
		"bin/old-only":              "-rwxr-xr-x " + hash6("stays\n"),
		"bin/demo":                  "-rwxr-xr-x " + hash6("#!/bin/sh\necho demo\n") + " links=2",
	} {
		if snap[p] != want {
			t.Errorf("%s: %q, want %q", p, snap[p], want)
		}
	}
}

// A directory made below a setgid directory inherits the bit (and one
// below a default ACL its mode bits): Publish gives every directory of the
// archive its own mode, whatever it was made with.
func TestPublishGivesDirectoriesTheirMode(t *testing.T) {
	archive := hostile(t, manifestTE(""), dirTE("data"), dirTE("data/sub"), fileTE("data/sub/f", "f\n"))
	sb := newSandbox(t)
	dest := filepath.Join(sb.outer, "root", testDest)
	must(t, os.MkdirAll(dest, 0o755))
	must(t, os.Chmod(dest, os.ModeSetgid|0o755))
	st, err := sb.extract(archive, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, st.Publish(sb.root, nil))
	fi, err := os.Lstat(filepath.Join(dest, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode(), fs.ModeDir|0o755; got != want {
		t.Errorf("data/sub is %v, want %v", got, want)
	}
}

func hash6(s string) string { return SumBytes([]byte(s)).String()[:12] }

// TestPublishDirectoryInTheWay: a directory where the archive has a file is
// an error naming it, and Discard still cleans up.
func TestPublishDirectoryInTheWay(t *testing.T) {
	archive := buildBytes(t, demoSource(t))
	sb := newSandbox(t)
	must(t, os.MkdirAll(filepath.Join(sb.outer, "root", testDest, "etc/demo.conf/sub"), 0o755))
	st, err := sb.extract(archive, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Publish(sb.root, nil)
	if err == nil || !strings.Contains(err.Error(), "publish "+testDest+"/etc/demo.conf: a directory is in the way") {
		t.Fatalf("Publish: got %v, want a directory in the way of etc/demo.conf", err)
	}
	must(t, st.Discard(sb.root))
	for p := range snapshot(t, filepath.Join(sb.outer, "root")) {
		if strings.Contains(p, TempPrefix) {
			t.Errorf("temporary %s left after Discard", p)
		}
	}
}

// TestExtractRefusesExistingSymlink: a symlink already on disk where the
// archive has a directory (planted, or left by an older version) is never
// followed, even when the archive itself is harmless.
func TestExtractRefusesExistingSymlink(t *testing.T) {
	sb := newSandbox(t)
	dest := filepath.Join(sb.outer, "root", testDest)
	must(t, os.MkdirAll(dest, 0o755))
	must(t, os.Symlink("../../../../../outside", filepath.Join(dest, "etc")))
	before := snapshot(t, sb.outer)
	archive := hostile(t, manifestTE(""), dirTE("data"), dirTE("data/etc"), fileTE("data/etc/victim", "pwned"))
	_, err := sb.extract(archive, Limits{})
	wantEntryError(t, err, "data/etc", testDest+"/etc exists and is not a directory")
	wantUnchanged(t, before, snapshot(t, sb.outer))
}

func TestExtractOptions(t *testing.T) {
	sb := newSandbox(t)
	archive := hostile(t, manifestTE(""))
	for _, opt := range []ExtractOptions{
		{Dest: "", Tag: "tx"}, {Dest: "/abs", Tag: "tx"}, {Dest: "a/../..", Tag: "tx"},
		{Dest: "d", Tag: ""}, {Dest: "d", Tag: "a/b"}, {Dest: "d", Tag: strings.Repeat("x", 33)},
	} {
		if _, err := Extract(bytes.NewReader(archive), sb.root, opt); err == nil {
			t.Errorf("Extract with %+v succeeded", opt)
		}
	}
}

func TestTempName(t *testing.T) {
	for _, tt := range []struct{ final, want string }{
		{"opt/packets/htop/data/bin/htop", "opt/packets/htop/data/bin/.pk-tx42-7"},
		{"top", ".pk-tx42-7"},
	} {
		if got := TempName(tt.final, "tx42", 7); got != tt.want {
			t.Errorf("TempName(%q) = %q, want %q", tt.final, got, tt.want)
		}
	}
}

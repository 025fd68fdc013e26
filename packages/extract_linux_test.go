package packages

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A tree staged whole is made with its directories' final modes, and
// Publish leaves those alone (ModeSet), but not below a parent whose
// default ACL changes the modes of what is made in it, nor a directory
// made with owner rwx that the archive takes away; a setgid parent gives
// its bit to the tree's top, which Extract's chmod takes off again.
func TestPublishStagedWholeModes(t *testing.T) {
	archive := func() []byte {
		return hostile(t, manifestTE(""), dirTE("data"), dirTE("data/sub"), fileTE("data/sub/f", "f\n"),
			te{name: "data/ro/", typ: tar.TypeDir, mode: 0o500})
	}
	wantModes := map[string]fs.FileMode{"sub": fs.ModeDir | 0o755, "ro": fs.ModeDir | 0o500, ".": fs.ModeDir | 0o755}
	check := func(t *testing.T, sb *sandbox, st *Staged, wantSet bool) {
		t.Helper()
		if st.Top == "" {
			t.Fatal("not staged whole: the test tests nothing")
		}
		for _, f := range st.Files {
			if f.Type == TypeDir && f.ModeSet != (wantSet && f.Mode&0o700 == 0o700) {
				t.Errorf("%s: ModeSet %v", f.Final, f.ModeSet)
			}
		}
		must(t, st.Publish(sb.root, nil))
		for p, want := range wantModes {
			fi, err := os.Lstat(filepath.Join(sb.outer, "root", testDest, p))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("data/%s is %v, want %v", p, fi.Mode(), want)
			}
		}
	}
	t.Run("plain", func(t *testing.T) {
		sb := newSandbox(t)
		st, err := sb.extract(archive(), Limits{})
		must(t, err)
		check(t, sb, st, true)
	})
	t.Run("setgid parent", func(t *testing.T) {
		sb := newSandbox(t)
		must(t, os.Chmod(filepath.Join(sb.outer, "root/opt/packets"), os.ModeSetgid|0o755))
		st, err := sb.extract(archive(), Limits{})
		must(t, err)
		check(t, sb, st, true)
	})
	t.Run("default ACL parent", func(t *testing.T) {
		sb := newSandbox(t)
		// A minimal default ACL, u::rwx g::r-x o::---: version 2, then
		// (tag, perm, id) entries for the owner, group and others.
		acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
		if err := unix.Setxattr(filepath.Join(sb.outer, "root/opt/packets"), "system.posix_acl_default", acl, 0); err != nil {
			t.Skipf("this filesystem takes no default ACL: %v", err)
		}
		st, err := sb.extract(archive(), Limits{})
		must(t, err)
		fi, err := os.Lstat(filepath.Join(sb.outer, "root", st.At(st.Files[len(st.Files)-1])))
		must(t, err)
		if fi.Mode().Perm()&0o007 != 0 {
			t.Fatalf("the default ACL left others %v: the test tests nothing", fi.Mode())
		}
		check(t, sb, st, false)
	})
}

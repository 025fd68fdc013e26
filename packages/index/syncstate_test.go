package index

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenSyncedNoIndex(t *testing.T) {
	_, err := OpenSynced(t.TempDir(), "extra")
	if !errors.Is(err, ErrNotSynced) || !strings.Contains(err.Error(), "run 'packets sync'") {
		t.Errorf("err = %v; want ErrNotSynced telling to run packets sync", err)
	}
}

// TestSyncOpenHandle checks that a handle opened before a sync keeps
// reading its own release after the new index is renamed over it.
func TestSyncOpenHandle(t *testing.T) {
	r, _ := standardRepo(t)
	m := newMirror(t, r.dir)
	c := newClient(t, m, r.pub)
	c.mustSync(t)
	old, err := OpenSynced(c.stateDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	os.Remove(filepath.Join(r.dir, PackagesDir, "htop-3.3.0.tar.zst"))
	r.now = t0.Add(time.Hour)
	r.index(t)
	c.mustSync(t)
	got, err := old.Lookup(t.Context(), "htop")
	if err != nil || len(got) != 1 {
		t.Errorf("old handle: htop %v, %v; want still there", names(got), err)
	}
	c.check(t, 2)
}

// TestSyncStateLost checks that rollback protection survives a lost state
// file (a crash between switching the index and recording the release): the
// index in place knows its release.
func TestSyncStateLost(t *testing.T) {
	r, _ := standardRepo(t)
	m := newMirror(t, r.dir)
	c := newClient(t, m, r.pub)
	c.mustSync(t)
	old, oldSig := r.readFile(t, ReleaseFile), r.readFile(t, SignatureFile)
	r.now = t0.Add(time.Hour)
	r.index(t)
	c.mustSync(t)
	if err := os.Remove(StatePath(c.stateDir, "")); err != nil {
		t.Fatal(err)
	}
	m.fail(ReleaseFile, fault{body: old})
	m.fail(SignatureFile, fault{body: oldSig})
	if _, err := c.sync(t); !errors.Is(err, ErrRollback) {
		t.Errorf("err = %v; want ErrRollback", err)
	}
	// The current release is accepted again and recorded.
	m.fail(ReleaseFile, fault{})
	m.fail(SignatureFile, fault{})
	c.mustSync(t)
	c.check(t, 2)
}

func TestSyncCorruptState(t *testing.T) {
	r, _ := standardRepo(t)
	m := newMirror(t, r.dir)
	c := newClient(t, m, r.pub)
	c.mustSync(t)
	mustWrite(t, StatePath(c.stateDir, ""), "version = \"x\"\n")
	if _, err := c.sync(t); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("err = %v; want advice to delete the state file", err)
	}
}

// TestSyncRepairsIndex checks that a damaged local index is reported with
// the remedy, and that sync downloads it again even though the release has
// not changed.
func TestSyncRepairsIndex(t *testing.T) {
	r, rel := standardRepo(t)
	m := newMirror(t, r.dir)
	c := newClient(t, m, r.pub)
	c.mustSync(t)
	mustWrite(t, IndexPath(c.stateDir, ""), strings.Repeat("x", int(rel.Index.Size)))
	_, err := OpenSynced(c.stateDir, "")
	if !errors.Is(err, ErrBadIndex) || !strings.Contains(err.Error(), "run 'packets sync' to download it again") {
		t.Errorf("OpenSynced: err = %v; want ErrBadIndex advising a sync", err)
	}
	if res := c.mustSync(t); !res.Changed {
		t.Errorf("sync %+v did not replace the damaged index", res)
	}
	c.check(t, 1)
}

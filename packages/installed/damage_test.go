package installed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

const pageSize = 4096 // SQLite's default, which Open keeps

// damage damages the database file at path as kind says.
func damage(t *testing.T, path, kind string) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	pages := len(data) / pageSize
	switch kind {
	case "truncated":
		data = data[:pages/2*pageSize]
	case "truncated mid-page":
		data = data[:pages/2*pageSize+1000]
	case "empty":
		data = nil
	case "garbage page":
		// A page of the files table, past the schema on page 1.
		copy(data[pages/2*pageSize:], bytes.Repeat([]byte("garbage!"), pageSize/8))
	case "not a database":
		data = bytes.Repeat([]byte("this is not a database\n"), len(data)/23)
	default:
		t.Fatalf("unknown damage %q", kind)
	}
	must(t, os.WriteFile(path, data, 0o644))
}

func TestOpenDetectsDamage(t *testing.T) {
	tests := []struct {
		damage string
		detail string // a fragment of DamagedError.Detail
		atOpen bool   // else Open succeeds, and Check and Verify find it
	}{
		{"truncated", "truncated: 45056 bytes, the header records 22 pages of 4096", true},
		{"truncated mid-page", "truncated: 46056 bytes, the header records 22 pages of 4096", true},
		{"garbage page", "database disk image is malformed", false},
		{"not a database", "file is not a database", true},
		{"empty", "the file is empty, but a backup of a database exists", true},
	}
	for _, tt := range tests {
		t.Run(tt.damage, func(t *testing.T) {
			path := newDBFile(t, 50)
			damage(t, path, tt.damage)
			before := readFile(t, path)
			err := openDamaged(t, path, tt.atOpen)
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DamagedError", err)
			}
			if de.Path != path || !strings.Contains(de.Detail, tt.detail) {
				t.Errorf("DamagedError{Path: %q, Detail: %q}, want Path %q and Detail containing %q", de.Path, de.Detail, path, tt.detail)
			}
			msg := err.Error()
			for _, want := range []string{
				path + " is damaged (" + de.Detail + ")",
				"run `packets db restore` to put back the copy saved after the last successful change, then `packets verify --repair`",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Error("Open wrote to the damaged database")
			}
			if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
				t.Error("Open wrote a WAL for the damaged database")
			}
		})
	}
}

// openDamaged opens path and returns the error of Open when atOpen, else
// that of Check after checking that Verify returns the same.
func openDamaged(t *testing.T, path string, atOpen bool) error {
	t.Helper()
	db, err := Open(t.Context(), path, Options{})
	if atOpen || err != nil {
		if err == nil {
			db.Close()
			t.Fatal("Open of a damaged database succeeded")
		}
		return err
	}
	defer db.Close()
	root, err := os.OpenRoot(t.TempDir())
	must(t, err)
	defer root.Close()
	_, verr := db.Verify(t.Context(), root, nil, true)
	err = db.Check(t.Context())
	if verr == nil || err == nil || verr.Error() != err.Error() {
		t.Errorf("Verify: %v, Check: %v; want the same *DamagedError", verr, err)
	}
	return err
}

// An empty file with no backup beside it is a database SQLite had only
// begun to create: Open makes it a new one.
func TestOpenEmptyFileWithoutBackup(t *testing.T) {
	path := newDBFile(t, 1)
	must(t, os.Remove(BackupPath(path)))
	damage(t, path, "empty")
	if got := count(t, path); got != 0 {
		t.Errorf("%d packages in a new database", got)
	}
}

// TestWALDeleted deletes the WAL of a database that crashed right after a
// commit: every commit is checkpointed into the database file before it
// returns, so the commit survives, and the -shm left stale does not
// matter.
func TestWALDeleted(t *testing.T) {
	tests := []struct {
		name     string
		keep     []string // the files the crash leaves
		wantNote bool
	}{
		{"wal kept", []string{"", "-wal", "-shm"}, true},
		{"wal deleted", []string{"", "-shm"}, true},
		{"wal and shm deleted", []string{""}, true},
	}
	path := newDBFile(t, 5)
	db, err := Open(t.Context(), path, Options{})
	must(t, err)
	must(t, db.SetMeta(t.Context(), "note", "committed just before the crash"))
	crashed := copyDBFiles(t, path) // as a crash (no checkpoint) leaves them
	must(t, db.Close())
	if _, ok := crashed["-wal"]; !ok {
		t.Fatal("no WAL to delete")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := t.TempDir() + "/installed.db"
			for _, s := range tt.keep {
				must(t, os.WriteFile(p+s, crashed[s], 0o644))
			}
			db, err := Open(t.Context(), p, Options{})
			must(t, err)
			defer db.Close()
			_, ok, err := db.Meta(t.Context(), "note")
			must(t, err)
			if ok != tt.wantNote {
				t.Errorf("the WAL's transaction present: %v, want %v", ok, tt.wantNote)
			}
			s, err := db.Snapshot(t.Context())
			must(t, err)
			if len(s.Packages) != 5 {
				t.Errorf("%d packages, want the 5 checkpointed before", len(s.Packages))
			}
		})
	}
}

// codeErr is an error with a SQLite result code, as the driver's.
type codeErr int

func (e codeErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codeErr) Code() int     { return int(e) }

func TestFullIsNoSpace(t *testing.T) {
	db := &DB{path: "installed.db"}
	for _, tc := range []struct {
		err     error
		noSpace bool
	}{
		{codeErr(13), true},       // SQLITE_FULL
		{codeErr(13 | 256), true}, // an extended code of it
		{codeErr(5), false},       // SQLITE_BUSY
		{errors.New("plain"), false},
	} {
		got := db.asDamaged(fmt.Errorf("begin: %w", tc.err))
		if errors.Is(got, syscall.ENOSPC) != tc.noSpace || !errors.Is(got, tc.err) {
			t.Errorf("%v: %v; want ENOSPC %v, and the error kept", tc.err, got, tc.noSpace)
		}
		if tc.noSpace && !strings.Contains(got.Error(), "no space left on device") {
			t.Errorf("%v: %q does not say the disk is full", tc.err, got)
		}
	}
}

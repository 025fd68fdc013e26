package installed

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/packets-dev/packets/packages"
)

// populate records n packages of per files each in one SQL transaction.
func populate(t testing.TB, db *DB, n, per int) {
	t.Helper()
	err := db.inTx(t.Context(), func(tx *sql.Tx) error {
		var files []File
		for i := range n {
			p := receipt(fmt.Sprintf("pkg%04d", i), int64(i))
			if err := putPackage(tx, p); err != nil {
				return err
			}
			for j := range per {
				files = append(files, File{Package: p.Name, Path: fmt.Sprintf("/opt/packets/%s/lib/f%03d", p.Name, j),
					Type: TypeFile, Mode: 0o644, Size: int64(j), Digest: packages.SumBytes([]byte{byte(j)}),
					MTime: time.Unix(1700000000, 0)})
			}
		}
		if err := insertFiles(tx, files); err != nil {
			return err
		}
		return bumpGeneration(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newDBFile creates a closed installed.db with n packages of 3 files each
// and a backup of it, and returns its path.
func newDBFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "var/lib/packets/installed.db")
	db, err := Open(t.Context(), path, Options{})
	must(t, err)
	populate(t, db, n, 3)
	must(t, db.Backup(t.Context()))
	must(t, db.Close())
	return path
}

// populatedDB opens a new database of pkgs packages with files files each.
func populatedDB(tb testing.TB, pkgs, files int) (*DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "installed.db")
	db, err := Open(tb.Context(), path, Options{})
	must(tb, err)
	populate(tb, db, pkgs, files)
	return db, path
}

// restoredPackage closes db, deletes its file, restores it from its
// backup and returns what the restored database records of package name.
func restoredPackage(t *testing.T, db *DB, path string, name packages.Name) *Package {
	t.Helper()
	must(t, db.Close())
	must(t, os.Remove(path))
	must(t, Restore(path))
	restored, err := Open(t.Context(), path, Options{})
	must(t, err)
	defer restored.Close()
	p, err := restored.Package(t.Context(), name)
	must(t, err)
	return p
}

// count opens path and returns how many packages it records.
func count(t *testing.T, path string) int {
	t.Helper()
	db, err := Open(t.Context(), path, Options{})
	must(t, err)
	defer db.Close()
	s, err := db.Snapshot(t.Context())
	must(t, err)
	return len(s.Packages)
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	path := newDBFile(t, 20)
	if _, err := os.Stat(BackupPath(path)); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(BackupPath(path) + ".tmp-*"); len(m) > 0 {
		t.Errorf("temps left by Backup: %v", m)
	}
	checkStandalone(t, BackupPath(path))
	damage(t, path, "not a database")
	_, err := Open(t.Context(), path, Options{})
	if de := (*DamagedError)(nil); !errors.As(err, &de) {
		t.Fatalf("Open of a damaged db: %v, want a *DamagedError", err)
	}
	must(t, Restore(path))
	if got := count(t, path); got != 20 {
		t.Errorf("after Restore: %d packages, want 20", got)
	}
	// The backup stays for the next time.
	if _, err := os.Stat(BackupPath(path)); err != nil {
		t.Error(err)
	}
}

// checkStandalone fails unless the database file at path is not in WAL
// mode (header bytes 18 and 19, the write and read versions, are 1) and
// has nothing beside it.
func checkStandalone(t *testing.T, path string) {
	t.Helper()
	head := make([]byte, 20)
	f, err := os.Open(path)
	must(t, err)
	_, err = io.ReadFull(f, head)
	f.Close()
	must(t, err)
	if head[18] != 1 || head[19] != 1 {
		t.Errorf("backup header versions %d/%d, want 1/1 (not WAL)", head[18], head[19])
	}
	if m, _ := filepath.Glob(path + "-*"); len(m) > 0 {
		t.Errorf("beside the backup: %v", m)
	}
}

// A reader in another process (here another connection) that began before
// the last commit keeps the checkpoint from copying it into the database
// file: the backup must still hold it, taken from the WAL.
func TestBackupBesideAReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "installed.db")
	// The commit's own checkpoint waits for the reader until the timeout.
	db, err := Open(t.Context(), path, Options{BusyTimeout: 50 * time.Millisecond})
	must(t, err)
	defer db.Close()
	populate(t, db, 2, 1)
	other, err := sql.Open("sqlite", path)
	must(t, err)
	defer other.Close()
	rtx, err := other.BeginTx(t.Context(), &sql.TxOptions{ReadOnly: true})
	must(t, err)
	var n int
	must(t, rtx.QueryRow("SELECT count(*) FROM packages").Scan(&n)) // the read transaction starts here
	must(t, db.SetReason(t.Context(), "pkg0001", ReasonDependency))
	must(t, db.Backup(t.Context()))
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the reader did not keep the commit in the WAL (%v): the test tests nothing", err)
	}
	must(t, rtx.Rollback())
	must(t, other.Close())
	checkStandalone(t, BackupPath(path))
	if p := restoredPackage(t, db, path, "pkg0001"); p.Reason != ReasonDependency {
		t.Errorf("restored reason %q, want %q: the backup lost the commit the reader kept in the WAL", p.Reason, ReasonDependency)
	}
}

// Another connection (a later packets migrating installed.db, which it
// does without the writers' lock) that commits while the file is being
// copied makes the copy untrustworthy: the backup is then made by SQLite's
// online backup, and holds that commit.
func TestBackupSeesACommitDuringTheCopy(t *testing.T) {
	db, path := populatedDB(t, 2, 1)
	defer db.Close()
	other, err := sql.Open("sqlite", path)
	must(t, err)
	defer other.Close()
	committed := false
	db.crashAt = func(step string) error {
		if step != "backup-copied" {
			return nil
		}
		committed = true
		_, err := other.Exec(`UPDATE packages SET reason = 'dependency' WHERE name = 'pkg0001'`)
		return err
	}
	must(t, db.Backup(t.Context()))
	db.crashAt = nil
	if !committed {
		t.Fatal("Backup did not copy the file: the test tests nothing")
	}
	must(t, other.Close())
	checkStandalone(t, BackupPath(path))
	if p := restoredPackage(t, db, path, "pkg0001"); p.Reason != ReasonDependency {
		t.Errorf("restored reason %q, want %q: the backup is the copy made before the other commit", p.Reason, ReasonDependency)
	}
}

func TestBackupReplacesOlderBackupAndSweepsTemps(t *testing.T) {
	db, path := populatedDB(t, 2, 1)
	defer db.Close()
	must(t, db.Backup(t.Context()))
	stale := BackupPath(path) + ".tmp-123"
	must(t, os.WriteFile(stale, []byte("half a backup"), 0o644))
	must(t, db.SetReason(t.Context(), "pkg0001", ReasonDependency))
	must(t, db.Backup(t.Context()))
	if _, err := os.Stat(stale); err == nil {
		t.Error("Backup left an interrupted backup's temp")
	}
	if p := restoredPackage(t, db, path, "pkg0001"); p.Reason != ReasonDependency {
		t.Errorf("restored reason %q, want the later backup's %q", p.Reason, ReasonDependency)
	}
}

func TestRestoreRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    error
		msg     string
	}{
		{"no backup", func(t *testing.T, path string) {
			damage(t, path, "truncated")
			must(t, os.Remove(BackupPath(path)))
		}, ErrNoBackup, "installed.db.bak does not exist"},
		{"damaged backup", func(t *testing.T, path string) {
			damage(t, path, "truncated")
			damage(t, BackupPath(path), "not a database")
		}, ErrNoBackup, "installed.db.bak is damaged too (file is not a database"},
		{"empty backup", func(t *testing.T, path string) {
			damage(t, path, "truncated")
			must(t, os.Truncate(BackupPath(path), 0))
		}, ErrNoBackup, "installed.db.bak is empty"},
		{"backup not an installed.db", func(t *testing.T, path string) {
			damage(t, path, "truncated")
			must(t, os.Remove(BackupPath(path)))
			other, err := sql.Open("sqlite", BackupPath(path))
			must(t, err)
			_, err = other.Exec(`CREATE TABLE t (x)`)
			must(t, err)
			must(t, other.Close())
		}, ErrNoBackup, "installed.db.bak is damaged too (read generation"},
		{"sound database", func(*testing.T, string) {}, ErrNotDamaged, "passes quick_check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newDBFile(t, 5)
			tt.prepare(t, path)
			before := dirList(t, filepath.Dir(path))
			err := Restore(path)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Restore: %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if diff := cmp.Diff(before, dirList(t, filepath.Dir(path))); diff != "" {
				t.Errorf("a refused Restore changed the directory (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRestoreKeepsDamagedFile(t *testing.T) {
	path := newDBFile(t, 5)
	// Reopen and write, so that the damaged database has a WAL too.
	db, err := Open(t.Context(), path, Options{})
	must(t, err)
	must(t, db.SetMeta(t.Context(), "note", "after the backup"))
	walCopy := copyDBFiles(t, path)
	must(t, db.Close())
	for _, s := range []string{"", "-wal", "-shm"} {
		if data, ok := walCopy[s]; ok {
			must(t, os.WriteFile(path+s, data, 0o644))
		}
	}
	damage(t, path, "garbage page")
	damaged := readFile(t, path)
	must(t, Restore(path))

	kept, err := filepath.Glob(path + ".damaged-*")
	must(t, err)
	if len(kept) != 2 || !strings.HasSuffix(kept[1], "-wal") || kept[0]+"-wal" != kept[1] {
		t.Fatalf("kept %v, want installed.db.damaged-<time> and its -wal", kept)
	}
	if string(readFile(t, kept[0])) != string(damaged) {
		t.Error("the kept file is not the damaged database")
	}
	if string(readFile(t, kept[1])) != string(walCopy["-wal"]) {
		t.Error("the kept WAL is not the damaged database's")
	}
	for _, s := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + s); err == nil {
			t.Errorf("stale %s left beside the restored database", s)
		}
	}
	if got := count(t, path); got != 5 {
		t.Errorf("after Restore: %d packages, want 5", got)
	}
	// A missing database is restored too, and the first kept file stays.
	must(t, os.Remove(path))
	must(t, Restore(path))
	if again, _ := filepath.Glob(path + ".damaged-*"); !cmp.Equal(again, kept) {
		t.Errorf("after restoring a missing database: kept %v, want %v", again, kept)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// dirList lists dir's files and sizes, leaving out an empty -wal and the
// -shm index, which SQLite creates when it only reads a database.
func dirList(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	m := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		must(t, err)
		if strings.HasSuffix(e.Name(), "-shm") || strings.HasSuffix(e.Name(), "-wal") && fi.Size() == 0 {
			continue
		}
		m[e.Name()] = fi.Size()
	}
	return m
}

// copyDBFiles returns the bytes of path and its -wal and -shm as they are,
// as a crash would leave them.
func copyDBFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, s := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(path + s); err == nil {
			m[s] = b
		}
	}
	return m
}

// BenchmarkBackup1000 times Backup of a database of 1,000 packages and
// 30,000 files.
func BenchmarkBackup1000(b *testing.B) {
	db, path := populatedDB(b, 1000, 30)
	defer db.Close()
	for b.Loop() {
		must(b, db.Backup(b.Context()))
	}
	fi, err := os.Stat(BackupPath(path))
	must(b, err)
	b.ReportMetric(float64(fi.Size())/1e6, "MB")
}

// BenchmarkOpen1000 times Open, quick_check included, of a database of
// 1,000 packages and 30,000 files; BenchmarkQuickCheck1000 the check alone.
func BenchmarkOpen1000(b *testing.B) {
	db, path := populatedDB(b, 1000, 30)
	must(b, db.Close())
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			db, err := Open(b.Context(), path, Options{})
			must(b, err)
			_, err = db.Generation(b.Context())
			must(b, err)
			must(b, db.Close())
		}
	})
	b.Run("quick_check", func(b *testing.B) {
		for b.Loop() {
			if p, err := quickCheck(b.Context(), path, time.Second); err != nil || len(p) > 0 {
				b.Fatal(p, err)
			}
		}
	})
}

// A Backup or Restore killed half-way leaves its temporaries; the next
// writer's Recover, which runs before anything else, deletes them (and
// nothing else beside the database).
func TestRecoverSweepsInterruptedBackup(t *testing.T) {
	m := newMachine(t)
	must(t, m.db.Backup(t.Context()))
	left := []string{
		BackupPath(m.dbPath) + ".tmp-1", BackupPath(m.dbPath) + ".tmp-1-journal",
		m.dbPath + ".tmp-2",
	}
	for _, p := range left {
		must(t, os.WriteFile(p, []byte("half"), 0o644))
	}
	if _, err := m.db.Recover(t.Context(), m.l, m.open, m.run); err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("Recover left %s", filepath.Base(p))
		}
	}
	for _, p := range []string{m.dbPath, BackupPath(m.dbPath)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Recover removed %s: %v", filepath.Base(p), err)
		}
	}
}

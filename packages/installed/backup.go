package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"modernc.org/sqlite"

	"github.com/packets-dev/packets/packages"
)

// backupSuffix names the backup beside the database: installed.db.bak.
const backupSuffix = ".bak"

// ErrNoBackup says that Restore found no backup it could trust.
var ErrNoBackup = errors.New("no good backup")

// ErrNotDamaged says that Restore was asked to replace a database that
// passes its integrity check.
var ErrNotDamaged = errors.New("database is not damaged")

// BackupPath returns where Backup saves the copy of the database at path.
func BackupPath(path string) string { return path + backupSuffix }

// Backup saves a consistent copy of the database as installed.db.bak
// beside it: a copy into a temporary name (copyTo: far cheaper than VACUUM
// INTO, which rebuilds every table), fsync, rename, fsync of the
// directory, so that the final name existing means the copy is whole. The
// CLI calls it under the writers' lock once after an apply succeeds; the
// engine never does. Leftovers of an interrupted Backup are swept first.
func (db *DB) Backup(ctx context.Context) error {
	final := BackupPath(db.path)
	if err := sweepDBTemps(db.path); err != nil {
		return fmt.Errorf("backup %s: %w", db.path, err)
	}
	if err := db.backupTo(ctx, final); err != nil {
		return fmt.Errorf("backup %s: %w", db.path, err)
	}
	db.log.Debug("saved a backup of installed.db", "path", final)
	return nil
}

func (db *DB) backupTo(ctx context.Context, final string) (err error) {
	// The backup writes into an existing empty file, so CreateTemp can
	// pick the unique name.
	f, err := os.CreateTemp(filepath.Dir(final), filepath.Base(final)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := db.copyTo(ctx, tmp); err != nil {
		return err
	}
	if err := packages.SyncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return packages.SyncPath(filepath.Dir(final))
}

// copyTo copies the database into the file at path, out of WAL mode (a
// standalone file, as VACUUM INTO would make it, that opens without a -wal
// or -shm beside it): the file's own bytes when nothing else is writing
// it (copyFile), else SQLite's online backup.
func (db *DB) copyTo(ctx context.Context, path string) error {
	done, err := db.copyFile(ctx, path)
	if done || err != nil {
		return err
	}
	if err := os.Truncate(path, 0); err != nil { // what copyFile wrote
		return err
	}
	return db.backupPages(ctx, path)
}

// copyFile copies the database file byte for byte once a checkpoint has
// copied every frame of the WAL into it, and marks the copy out of WAL
// mode as journal_mode = DELETE does: header bytes 18 and 19, the write
// and read versions, go from 2 to 1. done is false when the copy is not
// to be trusted: a reader in another process kept frames from being copied
// (the checkpoint is passive: it waits for no one, and an apply's commit
// has emptied the WAL already), or another connection committed between
// the checkpoint and the end of the copy, which PRAGMA data_version tells
// (Backup runs under the writers' lock, but a later packets opening
// installed.db migrates it without that lock, and checkpoints into the
// file). It takes half the time of the online backup, which copies page
// by page through SQLite (BenchmarkBackup1000); the file copy itself
// happens in the kernel (copy_file_range).
func (db *DB) copyFile(ctx context.Context, path string) (done bool, err error) {
	conn, err := db.sql.Conn(ctx) // one connection: data_version counts the commits of all others
	if err != nil {
		return false, err
	}
	defer conn.Close()
	before, err := dataVersion(ctx, conn)
	if err != nil {
		return false, err
	}
	var busy, logFrames, copied int
	err = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied)
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 || logFrames < 0 || logFrames != copied { // -1: not in WAL mode
		return false, nil
	}
	if err := copyFileTo(db.path, path); err != nil {
		return false, err
	}
	if err := db.crash("backup-copied"); err != nil {
		return false, err
	}
	after, err := dataVersion(ctx, conn)
	if err != nil || after != before {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	err = leaveWAL(f)
	return true, errors.Join(err, f.Close())
}

// copyFileTo copies the file at src over the existing file at dst.
func copyFileTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// dataVersion reads PRAGMA data_version on conn: it changes when another
// connection commits.
func dataVersion(ctx context.Context, conn *sql.Conn) (int64, error) {
	var v int64
	err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v)
	return v, err
}

// leaveWAL marks the copy of a database in f as not in WAL mode.
func leaveWAL(f *os.File) error {
	var head [100]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return fmt.Errorf("read the copy's header: %w", err)
	}
	if string(head[:16]) != "SQLite format 3\x00" || head[18] != 2 || head[19] != 2 {
		return fmt.Errorf("the copy's header is not that of a database in WAL mode")
	}
	_, err := f.WriteAt([]byte{1, 1}, 18)
	return err
}

// backupPages copies the database into the file at path with SQLite's
// online backup, all pages in one step, as one read transaction sees them,
// WAL included, then takes the copy out of WAL mode (the pages copied say
// WAL, as the source is).
func (db *DB) backupPages(ctx context.Context, path string) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		src, ok := dc.(interface {
			NewBackup(dst string) (*sqlite.Backup, error)
		})
		if !ok {
			return fmt.Errorf("the sqlite driver's connection (%T) cannot back up", dc)
		}
		b, err := src.NewBackup(path)
		if err != nil {
			return err
		}
		_, err = b.Step(-1)
		return errors.Join(err, b.Finish())
	})
	if err != nil {
		return err
	}
	dst, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	_, err = dst.ExecContext(ctx, `PRAGMA journal_mode = DELETE`)
	return errors.Join(err, dst.Close())
}

// sweepDBTemps deletes what an interrupted Backup or Restore of the database
// at path left: path.bak.tmp-* (with SQLite's -journal beside it) and
// path.tmp-*. Call it under the writers' lock only: no other process
// writes these names then.
func sweepDBTemps(path string) error {
	var old []string
	for _, prefix := range []string{BackupPath(path), path} {
		m, err := filepath.Glob(globEscape(prefix) + ".tmp-*")
		if err != nil {
			return err
		}
		old = append(old, m...)
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Restore replaces the damaged or missing database at path with its
// backup (BackupPath), after checking that the backup passes quick_check;
// it refuses, wrapping ErrNoBackup, when there is no such backup, and,
// wrapping ErrNotDamaged, when the database at path is sound. The damaged
// file is kept as path.damaged-<unix time>, with its WAL beside it as
// path.damaged-<unix time>-wal so that SQLite still reads them together;
// the -shm index is deleted (it is rebuilt from the WAL). The backup
// itself stays. Call it under the writers' lock, with the database
// closed; then run `packets verify --repair`.
func Restore(path string) error {
	ctx := context.Background()
	bak := BackupPath(path)
	if err := checkBackup(ctx, bak); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	// Open's cheap check, then the full quick_check it skips.
	err := checkIntact(ctx, path, 5*time.Second)
	if err == nil && exists(path) {
		err = damaged(ctx, path, 5*time.Second)
	}
	var de *DamagedError
	switch {
	case err == nil && exists(path):
		return fmt.Errorf("restore %s: %w: it passes quick_check; move it aside first to restore the backup anyway", path, ErrNotDamaged)
	case err != nil && !errors.As(err, &de):
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := restoreFrom(path, bak); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	return nil
}

// checkBackup returns an error wrapping ErrNoBackup unless bak is a
// sound packets database.
func checkBackup(ctx context.Context, bak string) error {
	fi, err := os.Stat(bak)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist (packets saves it after each successful apply)", ErrNoBackup, bak)
	case err != nil:
		return err
	case fi.Size() == 0:
		return fmt.Errorf("%w: %s is empty", ErrNoBackup, bak)
	}
	problems, err := quickCheck(ctx, bak, 0)
	if err == nil && len(problems) > 0 {
		err = errors.New(problems[0])
	}
	if err == nil {
		// A SQLite file that is not installed.db has no generation.
		err = readGeneration(ctx, bak)
	}
	if err != nil {
		return fmt.Errorf("%w: %s is damaged too (%s)", ErrNoBackup, bak, oneLine(err.Error()))
	}
	return nil
}

// restoreFrom copies bak to a temporary name beside path and syncs it,
// moves the damaged database aside, then renames the copy into place.
// Interrupted anywhere, it leaves either the damaged database or none at
// path, and running it again finishes the job.
func restoreFrom(path, bak string) error {
	tmp, err := copyToTemp(bak, path)
	if err != nil {
		return err
	}
	if err := moveAside(path); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return packages.SyncPath(filepath.Dir(path))
}

// moveAside renames the database at path and its WAL to
// path.damaged-<unix time>[-wal] and deletes its -shm.
func moveAside(path string) error {
	stamp := time.Now().Unix()
	aside := path + ".damaged-" + strconv.FormatInt(stamp, 10)
	for n := 1; exists(aside) || exists(aside+"-wal"); n++ {
		aside = fmt.Sprintf("%s.damaged-%d.%d", path, stamp, n)
	}
	for _, suffix := range []string{"", "-wal"} {
		err := os.Rename(path+suffix, aside+suffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(path + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return packages.SyncPath(filepath.Dir(path))
}

// copyToTemp copies src to a new temporary file beside dst and syncs it.
func copyToTemp(src, dst string) (tmp string, err error) {
	out, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return "", err
	}
	tmp = out.Name()
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	err = copyFileTo(src, tmp)
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = packages.SyncPath(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

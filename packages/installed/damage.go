package installed

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DamagedError says that installed.db fails SQLite's integrity check (it
// was truncated, a page was overwritten, it is not a database at all).
// Nothing was written to it. The repair path is `packets db restore`
// (Restore), then `packets verify --repair`.
type DamagedError struct {
	Path   string // the database file
	Detail string // what SQLite found, on one line: "file is not a database"
	Err    error  // the SQLite error, if the check could not even run; may be nil
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%s): run `packets db restore` to put back the copy saved after the last successful change, then `packets verify --repair`",
		e.Path, e.Detail)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// SQLite's primary result codes for a damaged file (sqlite3.h).
const (
	sqliteCorrupt = 11 // SQLITE_CORRUPT: "database disk image is malformed"
	sqliteNotADB  = 26 // SQLITE_NOTADB: "file is not a database"
	sqliteFull    = 13 // SQLITE_FULL: "database or disk is full"
)

// maxCheckErrors bounds how many problems quick_check lists: the first
// few say enough, and a badly damaged file can have thousands.
const maxCheckErrors = 5

// isDamage reports whether err is SQLite saying the file is damaged.
func isDamage(err error) bool {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff // extended codes carry the primary one in the low byte
	return c == sqliteCorrupt || c == sqliteNotADB
}

// openReadOnly opens path through a SQLite URI in read-only mode, so that
// checking a file can never write to it. A zero busy opens it immutable:
// no locks, no -shm or -wal (for a backup, which nothing else opens).
func openReadOnly(path string, busy time.Duration) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	q := "mode=ro&immutable=1"
	if busy > 0 {
		q = fmt.Sprintf("mode=ro&_busy_timeout=%d", busy.Milliseconds())
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q}
	return sql.Open("sqlite", u.String())
}

// checkIntact runs PRAGMA quick_check on the existing database at path
// (with its WAL, if any) through a read-only connection, and returns a
// *DamagedError if SQLite finds it damaged. A missing file is a new
// database, not a damaged one. An empty file is how SQLite starts one
// too, so it counts as damaged only when a backup says there was a
// database here and no WAL holds its first transactions.
func checkIntact(ctx context.Context, path string, busy time.Duration) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("open %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return &DamagedError{Path: path, Detail: "not a regular file"}
	case fi.Size() == 0:
		if nonEmpty(path+"-wal") || !nonEmpty(path+backupSuffix) {
			return nil
		}
		return &DamagedError{Path: path, Detail: "the file is empty, but a backup of a database exists"}
	}
	if d := truncation(path, fi.Size()); d != "" {
		return &DamagedError{Path: path, Detail: d}
	}
	// quick_check reads every page: 20 ms for 1,000 packages and 30,000
	// files. Open runs it only when the cheap reads fail, to say what is
	// wrong; DB.Check and Verify run it always.
	if err := cheapCheck(ctx, path, busy); !isDamage(err) {
		if err != nil {
			return fmt.Errorf("open %s: check integrity: %w", path, err)
		}
		return nil
	}
	return damaged(ctx, path, busy)
}

// damaged runs quick_check on the database at path and returns a
// *DamagedError saying what it found, or nil.
func damaged(ctx context.Context, path string, busy time.Duration) error {
	problems, err := quickCheck(ctx, path, busy)
	if isDamage(err) {
		return &DamagedError{Path: path, Detail: oneLine(err.Error()), Err: err}
	}
	if err != nil {
		return fmt.Errorf("check integrity of %s: %w", path, err)
	}
	if len(problems) > 0 {
		return &DamagedError{Path: path, Detail: "quick_check: " + oneLine(strings.Join(problems, "; "))}
	}
	return nil
}

// cheapCheck reads the header and the schema of the
// database at path through a read-only connection.
func cheapCheck(ctx context.Context, path string, busy time.Duration) error {
	sdb, err := openReadOnly(path, busy)
	if err != nil {
		return err
	}
	defer sdb.Close()
	// Reading the schema table reads page 1 and the header, and parses
	// every CREATE statement.
	var n int
	return sdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
}

// truncation says how the file at path is shorter than its header
// records, or "" when it is not (or the header's size is not valid, or a
// WAL may hold the missing pages).
func truncation(path string, size int64) string {
	if nonEmpty(path + "-wal") {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return "" // shorter than a header: SQLite says what it is
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	// The in-header size is valid only when the change counter matches
	// version-valid-for (file format, sqlite.org/fileformat.html 1.3.7).
	if !bytes.Equal(h[24:28], h[92:96]) || pages*pageSize <= size {
		return ""
	}
	return fmt.Sprintf("truncated: %d bytes, the header records %d pages of %d", size, pages, pageSize)
}

// quickCheck returns what PRAGMA quick_check reports wrong with the
// database at path, nothing when it is sound.
func quickCheck(ctx context.Context, path string, busy time.Duration) ([]string, error) {
	sdb, err := openReadOnly(path, busy)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	rows, err := sdb.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", maxCheckErrors))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	return problems, rows.Err()
}

// readGeneration reads the generation of the database at path, opened
// immutable: it fails on a SQLite file that is not an installed.db.
func readGeneration(ctx context.Context, path string) error {
	sdb, err := openReadOnly(path, 0)
	if err != nil {
		return err
	}
	defer sdb.Close()
	_, err = generation(ctx, sdb)
	return err
}

func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}

// globEscape quotes the metacharacters of filepath.Match in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneLine joins a multi-line SQLite message so that the error stays one
// line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Check runs SQLite's quick_check on the open database (20 ms for 1,000
// packages and 30,000 files) and returns a *DamagedError if it finds
// damage that Open's cheap check did not.
func (db *DB) Check(ctx context.Context) error {
	busy := 5 * time.Second
	return damaged(ctx, db.path, busy)
}

// asDamaged turns SQLite's "malformed" or "not a database" into a
// *DamagedError naming the file.
//
// It also makes SQLite's "database or disk is full" say, and match, what a
// full disk says elsewhere (syscall.ENOSPC): an apply that fills the disk
// reports it alike whichever write noticed first.
func (db *DB) asDamaged(err error) error {
	if isDamage(err) {
		return &DamagedError{Path: db.path, Detail: oneLine(err.Error()), Err: err}
	}
	var se interface{ Code() int }
	if errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return fmt.Errorf("%w: %w", err, syscall.ENOSPC)
	}
	return err
}

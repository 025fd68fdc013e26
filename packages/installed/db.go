package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// ErrNotInstalled says that a package has no row in installed.db.
var ErrNotInstalled = errors.New("not installed")

// ErrTooNew says that installed.db was written by a newer packets.
var ErrTooNew = errors.New("database schema is newer than this packets")

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives debug and info records; nil discards them.
	Logger *slog.Logger
	// BusyTimeout is how long a statement waits for another connection's
	// write lock before failing with SQLITE_BUSY. Zero means 5 seconds. The
	// CLI's flock makes contention rare; this covers readers such as
	// `packets list` running beside an apply.
	BusyTimeout time.Duration
}

// DB is an open installed.db. It is safe for concurrent use, but only one
// Tx may be in flight: the CLI serialises writers with its flock.
type DB struct {
	sql  *sql.DB
	path string
	log  *slog.Logger

	// crashAt, when set by a test, is called at every named step of the
	// engine; a non-nil return stops the engine right there, as a crash
	// would, leaving the disk and the journal as they are. crashMu
	// serialises the calls from workers.
	crashAt func(step string) error
	crashMu sync.Mutex

	// stmts are the statements prepared by prepared, by query text.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
}

// Open opens (creating it and its parent directories if needed) the
// installed.db at path and brings its schema up to date. It refuses a
// database whose schema is newer than this build (ErrTooNew), and one
// that fails SQLite's quick_check (a *DamagedError), without writing to
// it: the check runs through a read-only connection first.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open %s: a database path may not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	busy := opt.BusyTimeout
	if busy == 0 {
		busy = 5 * time.Second
	}
	// A *DamagedError names the file and the repair: it is returned as is.
	if err := checkIntact(ctx, path, busy); err != nil {
		return nil, err
	}
	// Every connection of the pool gets these: WAL so readers never block
	// the writer, FULL so a commit is on disk when it returns (DESIGN §8),
	// IMMEDIATE transactions so two writers queue on busy_timeout
	// instead of deadlocking on a lock upgrade, and temporary storage in
	// memory: a cold apply of 200 packages (30,000 file rows in one
	// statement journal) otherwise wrote 14 MB to a file in /var/tmp.
	dsn := fmt.Sprintf("%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate&_pragma=temp_store(2)",
		path, busy.Milliseconds())
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{sql: sdb, path: path, log: log}
	migrated, err := db.migrate(ctx, SchemaVersion)
	if err != nil {
		sdb.Close()
		if isDamage(err) {
			return nil, &DamagedError{Path: path, Detail: oneLine(err.Error()), Err: err}
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if migrated { // a migration is a commit too
		if err := db.checkpoint(ctx); err != nil {
			sdb.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for _, st := range db.stmts {
		st.Close()
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	return db.sql.Close()
}

// prepared returns query prepared once for the life of db, for a query
// run once per hook or per path: SQLite otherwise parses and plans it
// every time, which costs more than running it.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st, ok := db.stmts[query]; ok {
		return st, nil
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = map[string]*sql.Stmt{}
	}
	db.stmts[query] = st
	return st, nil
}

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.path }

// migrate runs the migrations that take the database to version target,
// each in its own transaction together with its user_version bump, so a
// crash leaves the database at one version or the next, and reports
// whether it ran any. A database at target already is only read: opening
// it never waits for a writer (an apply holds the write lock while it
// extracts).
func (db *DB) migrate(ctx context.Context, target int) (migrated bool, err error) {
	v, err := db.schemaVersion(ctx)
	if err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if v == target {
		return false, nil
	}
	for {
		done, err := db.migrateOne(ctx, target)
		if err != nil || done {
			return migrated, err
		}
		migrated = true
	}
}

func (db *DB) migrateOne(ctx context.Context, target int) (done bool, err error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v > len(migrations):
		return false, fmt.Errorf("%w: schema version %d, this build knows up to %d; upgrade packets", ErrTooNew, v, len(migrations))
	case v >= target:
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
	}
	// PRAGMA takes no bound parameters; v+1 is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
	}
	db.log.Info("migrated installed.db", "from", v, "to", v+1)
	return false, nil
}

// schemaVersion reports the database's user_version.
func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// inTx runs fn in one IMMEDIATE transaction and commits it, which with
// synchronous=FULL is one fsync of the WAL, then checkpoints: the commit
// is copied into the database file itself (and synced), so a WAL deleted
// by hand after a crash never takes a committed change with it.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return db.asDamaged(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return db.asDamaged(err)
	}
	if err := tx.Commit(); err != nil {
		return db.asDamaged(err)
	}
	return db.checkpoint(ctx)
}

// checkpoint copies the WAL into the database file and empties it. A
// reader in another process (packets list beside an apply) can make it
// stop short; that is not an error, the rest is copied by the next one.
func (db *DB) checkpoint(ctx context.Context) error {
	var busy, logFrames, done int
	err := db.sql.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", db.asDamaged(err))
	}
	if busy != 0 {
		db.log.Debug("checkpoint stopped short: a reader holds the WAL", "frames", logFrames, "copied", done)
	}
	return nil
}

// crash reports the test-only crash hook's verdict for step.
func (db *DB) crash(step string) error {
	if db.crashAt == nil {
		return nil
	}
	db.crashMu.Lock()
	defer db.crashMu.Unlock()
	return db.crashAt(step)
}

package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/packets-dev/packets/packages"
)

// Generation counts committed changes to installed.db. A plan computed
// against one generation must not be applied to another.
type Generation int64

// Well-known meta keys.
const (
	MetaGeneration = "generation" // maintained by the engine; read it with DB.Generation
	MetaDataDir    = "data_dir"   // the data dir packages were last installed under
)

// Snapshot is a consistent view of every installed package at one
// generation.
type Snapshot struct {
	Generation Generation
	Packages   map[packages.Name]*Package
}

// Snapshot reads every receipt and the generation in one read transaction.
func (db *DB) Snapshot(ctx context.Context) (*Snapshot, error) {
	return db.snapshot(ctx, packageColumns, scanPackage)
}

// Brief is Snapshot with receipts that hold only what a plan reads: name,
// version, family, serial, dependencies, repo, digest, reason and options
// (the other fields are zero). A no-op apply of 1,000 packages reads them
// in about half the time.
func (db *DB) Brief(ctx context.Context) (*Snapshot, error) {
	return db.snapshot(ctx, briefColumns, scanBrief)
}

func (db *DB) snapshot(ctx context.Context, columns string, scan func(interface{ Scan(...any) error }) (*Package, error)) (*Snapshot, error) {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer tx.Rollback()
	gen, err := generation(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM packages`)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer rows.Close()
	s := &Snapshot{Generation: gen, Packages: map[packages.Name]*Package{}}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		s.Packages[p.Name] = p
	}
	if err := rows.Err(); err != nil {
		return nil, db.asDamaged(err)
	}
	return s, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const generationQuery = `SELECT value FROM meta WHERE key = ?`

func generation(ctx context.Context, q querier) (Generation, error) {
	return parseGeneration(q.QueryRowContext(ctx, generationQuery, MetaGeneration))
}

func parseGeneration(row *sql.Row) (Generation, error) {
	var s string
	if err := row.Scan(&s); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return Generation(g), nil
}

// bumpGeneration increments the generation inside a writing transaction.
func bumpGeneration(tx *sql.Tx) error {
	_, err := tx.Exec(`UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ?`, MetaGeneration)
	if err != nil {
		return fmt.Errorf("bump generation: %w", err)
	}
	return nil
}

// Count returns how many packages are installed.
func (db *DB) Count(ctx context.Context) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM packages`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count installed packages: %w", db.asDamaged(err))
	}
	return n, nil
}

// Generation returns the current generation; it is one indexed read, of
// a statement prepared once (an apply with hooks asks before every hook).
func (db *DB) Generation(ctx context.Context) (Generation, error) {
	st, err := db.prepared(ctx, generationQuery)
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return parseGeneration(st.QueryRowContext(ctx, MetaGeneration))
}

// Package returns name's receipt, or an error wrapping ErrNotInstalled.
func (db *DB) Package(ctx context.Context, name packages.Name) (*Package, error) {
	return getPackage(ctx, db.sql, name)
}

func getPackage(ctx context.Context, q querier, name packages.Name) (*Package, error) {
	p, err := scanPackage(q.QueryRowContext(ctx, `SELECT `+packageColumns+` FROM packages WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("package %s: %w", name, ErrNotInstalled)
	}
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	return p, nil
}

// Files returns the paths name owns, sorted by path. A package that is not
// installed owns nothing: the list is empty, not an error.
func (db *DB) Files(ctx context.Context, name packages.Name) ([]File, error) {
	files, err := packageFiles(ctx, db.sql, name)
	if err != nil {
		return nil, fmt.Errorf("files of %s: %w", name, err)
	}
	return files, nil
}

func packageFiles(ctx context.Context, q querier, name packages.Name) ([]File, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+fileColumns+` FROM files WHERE package = ? ORDER BY path`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, rows.Err()
}

// Owner returns the package that owns path (an absolute machine path,
// "/usr/bin/htop"), and false when no package does.
func (db *DB) Owner(ctx context.Context, path string) (packages.Name, bool, error) {
	return owner(ctx, db.sql, path)
}

func owner(ctx context.Context, q querier, path string) (packages.Name, bool, error) {
	var n packages.Name
	err := q.QueryRowContext(ctx, `SELECT package FROM files WHERE path = ?`, path).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("owner of %s: %w", path, err)
	}
	return n, true, nil
}

// SetReason records why name is installed (a dependency the user now
// declares becomes explicit, and back). It bumps the generation.
func (db *DB) SetReason(ctx context.Context, name packages.Name, r Reason) error {
	if r != ReasonExplicit && r != ReasonDependency {
		return fmt.Errorf("set reason of %s: unknown reason %q", name, r)
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE packages SET reason = ? WHERE name = ?`, r, name)
		if err != nil {
			return fmt.Errorf("set reason of %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("set reason of %s: %w", name, ErrNotInstalled)
		}
		return bumpGeneration(tx)
	})
}

// Meta returns the value stored under key, and false when there is none.
func (db *DB) Meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("meta %s: %w", key, err)
	}
	return v, true, nil
}

// SetMeta stores value under key. The generation is the engine's and cannot
// be set.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	if key == MetaGeneration {
		return fmt.Errorf("set meta %s: maintained by the engine", key)
	}
	err := db.inTx(ctx, func(stx *sql.Tx) error {
		_, err := stx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("set meta %s: %w", key, err)
	}
	return nil
}

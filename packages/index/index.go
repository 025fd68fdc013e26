package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/packets-dev/packets/packages"
)

// DefaultDataDir is where packages' data/ trees are installed unless
// config.toml says otherwise: /opt/packets/<name>/data/.
const DefaultDataDir = "/opt/packets"

// Index is a read-only handle on a verified index database. Its queries are
// safe for concurrent use. It holds one SQLite connection for its whole life,
// opened with immutable=1: when Sync renames a newer index over the file,
// this handle keeps reading the one it opened, consistently, until Close.
type Index struct {
	db      *sql.DB
	conn    *sql.Conn
	path    string
	repo    string // the client's name for the repository, for Available.Repo
	dataDir string
	release Release

	mu    sync.Mutex
	whole []packages.Available // every build, once a lookup read them all: later lookups answer from it
}

// Open opens the index database at path read-only and checks its format.
// Release().Index is zero: the file does not know its own hash (OpenSynced
// fills it from the sync state).
func Open(path string) (*Index, error) {
	ix, err := open(context.Background(), path)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return ix, nil
}

func open(ctx context.Context, path string) (*Index, error) {
	name, err := dsn(path, "mode=ro&immutable=1&_pragma=trusted_schema(0)")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	ix := &Index{db: db, conn: conn, path: path, dataDir: DefaultDataDir}
	if err := ix.load(ctx); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// load reads meta and checks that the tables have the columns queries use.
func (ix *Index) load(ctx context.Context) error {
	rows, err := ix.conn.QueryContext(ctx, `SELECT key, value FROM meta`)
	if err != nil {
		return badIndex(err)
	}
	meta := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return badIndex(err)
		}
		meta[k] = v
	}
	if err := rows.Close(); err != nil {
		return badIndex(err)
	}
	if err := rows.Err(); err != nil {
		return badIndex(err)
	}
	if f := meta["format"]; f != formatVersion {
		return &Error{Kind: ErrBadIndex, Detail: fmt.Sprintf("index format %q, this packets reads format %s", f, formatVersion),
			Hint: "upgrade packets, or ask the repository owner which packets version the repository needs"}
	}
	r := Release{Repo: meta["repo"]}
	if r.Version, err = strconv.ParseInt(meta["version"], 10, 64); err != nil {
		return badIndex(fmt.Errorf("meta version: %w", err))
	}
	if r.Issued, err = time.Parse(time.RFC3339, meta["issued"]); err != nil {
		return badIndex(fmt.Errorf("meta issued: %w", err))
	}
	if r.Expires, err = time.Parse(time.RFC3339, meta["expires"]); err != nil {
		return badIndex(fmt.Errorf("meta expires: %w", err))
	}
	ix.release = r
	for _, q := range []string{
		`SELECT ` + pkgCols + ` FROM packages p LIMIT 0`,
		`SELECT package_id, rpath FROM files LIMIT 0`,
	} {
		rows, err := ix.conn.QueryContext(ctx, q)
		if err != nil {
			return badIndex(err)
		}
		rows.Close()
	}
	return nil
}

// badIndex is an unusable index. Callers that know what to advise set Hint.
func badIndex(err error) error {
	return &Error{Kind: ErrBadIndex, Detail: "not a packets index", Err: err}
}

// quickCheck runs SQLite's quick_check over the whole file.
func (ix *Index) quickCheck(ctx context.Context) error {
	var res string
	if err := ix.conn.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&res); err != nil {
		return badIndex(err)
	}
	if res != "ok" {
		return badIndex(errors.New("quick_check: " + res))
	}
	return nil
}

// Close releases the database.
func (ix *Index) Close() error {
	err := ix.conn.Close()
	if cerr := ix.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path returns the file the index was opened from.
func (ix *Index) Path() string { return ix.path }

// Release returns the release the index belongs to: repository name,
// version, issue and expiry times from the index itself, and, for an index
// opened with OpenSynced, the IndexRef of the signed release it was verified
// against.
func (ix *Index) Release() Release { return ix.release }

// SetDataDir sets the directory that installed paths are built from
// (config.toml data_dir; DefaultDataDir unless called). Call it before
// sharing ix between goroutines.
func (ix *Index) SetDataDir(dir string) { ix.dataDir = path.Clean(dir) }

// InstalledPath maps an archive path relative to data/ ("bin/htop") to
// where it is installed: "<data dir>/<name>/data/bin/htop".
func (ix *Index) InstalledPath(name packages.Name, rel string) string {
	return path.Join(ix.dataDir, string(name), packages.DataDir, rel)
}

// All returns every package, sorted by name and serial.
func (ix *Index) All(ctx context.Context) ([]packages.Available, error) {
	var n int
	if err := ix.conn.QueryRowContext(ctx, `SELECT count(*) FROM packages`).Scan(&n); err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	return ix.queryPackagesInto(ctx, make([]packages.Available, 0, n), `SELECT `+pkgCols+` FROM packages p ORDER BY p.name, p.serial`)
}

// Named returns every build named one of names, in no particular order.
func (ix *Index) Named(ctx context.Context, names []packages.Name) ([]packages.Available, error) {
	if len(names) == 0 {
		return nil, nil
	}
	all, err := ix.wholeIf(ctx, len(names))
	if err != nil {
		return nil, err
	}
	if all != nil {
		want := make(map[packages.Name]bool, len(names))
		for _, n := range names {
			want[n] = true
		}
		var out []packages.Available
		for _, a := range all {
			if want[a.Name] {
				out = append(out, a)
			}
		}
		return out, nil
	}
	j, err := json.Marshal(names)
	if err != nil {
		return nil, err
	}
	return ix.queryPackages(ctx, `SELECT `+pkgCols+` FROM packages p WHERE p.name IN (SELECT value FROM json_each(?))`, string(j))
}

// FamilyNames returns the names the builds of families have (a family
// renamed has two), each once, in no particular order.
func (ix *Index) FamilyNames(ctx context.Context, families []packages.Family) ([]packages.Name, error) {
	if len(families) == 0 {
		return nil, nil
	}
	ix.mu.Lock()
	all := ix.whole
	ix.mu.Unlock()
	if all != nil {
		want := make(map[packages.Family]bool, len(families))
		for _, f := range families {
			want[f] = true
		}
		seen := map[packages.Name]bool{}
		var out []packages.Name
		for _, a := range all {
			if want[a.Family] && !seen[a.Name] {
				seen[a.Name] = true
				out = append(out, a.Name)
			}
		}
		return out, nil
	}
	j, err := json.Marshal(families)
	if err != nil {
		return nil, err
	}
	if ix.mostOf(ctx, len(families)) {
		return ix.queryNames(ctx, `SELECT DISTINCT name FROM packages NOT INDEXED WHERE family IN (SELECT value FROM json_each(?))`, string(j))
	}
	return ix.queryNames(ctx, `SELECT DISTINCT name FROM packages WHERE family IN (SELECT value FROM json_each(?))`, string(j))
}

// Preload reads the whole index now when n names would pick out a good part
// of it, as Named would then: later lookups are answered from memory. A
// caller that knows how many names it will look up can read the index
// beside its other work instead of after it.
func (ix *Index) Preload(ctx context.Context, n int) error {
	_, err := ix.wholeIf(ctx, n)
	return err
}

// Whole returns every build, sorted by name and serial, when the index has
// been read whole already (Preload, or Named of many names); otherwise nil
// and false. The slice is the index's own: copy what is changed.
func (ix *Index) Whole() ([]packages.Available, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.whole, ix.whole != nil
}

// wholeIf returns every build of the index when it has read them already,
// or reads (and keeps) them when n keys would pick out a good part of it
// (mostOf); otherwise nil: look the keys up.
func (ix *Index) wholeIf(ctx context.Context, n int) ([]packages.Available, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.whole != nil || !ix.mostOf(ctx, n) {
		return ix.whole, nil
	}
	all, err := ix.All(ctx)
	if err != nil {
		return nil, err
	}
	ix.whole = all
	return all, nil
}

// mostOf reports whether n keys would pick out a good part of the index:
// then reading every row is cheaper than looking each key up.
func (ix *Index) mostOf(ctx context.Context, n int) bool {
	if n < 64 {
		return false
	}
	var rows int
	// The ids are assigned in order: the largest is the row count, found
	// without counting.
	if err := ix.conn.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM packages`).Scan(&rows); err != nil {
		return false
	}
	return 4*n >= rows
}

// Names returns the name of every build, sorted, each once.
func (ix *Index) Names(ctx context.Context) ([]packages.Name, error) {
	return ix.queryNames(ctx, `SELECT DISTINCT name FROM packages ORDER BY name`)
}

// queryNames returns the names q selects.
func (ix *Index) queryNames(ctx context.Context, q string, args ...any) ([]packages.Name, error) {
	rows, err := ix.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	defer rows.Close()
	var out []packages.Name
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("query index: %w", err)
		}
		out = append(out, packages.Name(n))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	return out, nil
}

// Lookup returns every build named name, sorted by serial; none is not an
// error.
func (ix *Index) Lookup(ctx context.Context, name packages.Name) ([]packages.Available, error) {
	return ix.queryPackages(ctx, `SELECT `+pkgCols+` FROM packages p WHERE p.name = ? ORDER BY p.serial`, string(name))
}

// Search returns the packages whose name or description contains term,
// ignoring ASCII case: exact name matches first, then names starting with
// term, then other names containing it, then description matches; within
// each, by name and serial. An empty term returns All.
func (ix *Index) Search(ctx context.Context, term string) ([]packages.Available, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return ix.All(ctx)
	}
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(term)
	return ix.queryPackages(ctx, `SELECT `+pkgCols+` FROM packages p
		WHERE p.name LIKE ?1 ESCAPE '\' OR p.description LIKE ?1 ESCAPE '\'
		ORDER BY CASE
			WHEN p.name = ?2 COLLATE NOCASE THEN 0
			WHEN p.name LIKE ?3 ESCAPE '\' THEN 1
			WHEN p.name LIKE ?1 ESCAPE '\' THEN 2
			ELSE 3 END, p.name, p.serial`,
		"%"+esc+"%", term, esc+"%")
}

// Files returns the installed paths of the non-directory entries of the
// build name/serial, sorted; an unknown build is an error.
func (ix *Index) Files(ctx context.Context, name packages.Name, serial int64) ([]string, error) {
	var id int64
	err := ix.conn.QueryRowContext(ctx, `SELECT id FROM packages WHERE name = ? AND serial = ?`, string(name), serial).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s serial %d is not in the index", name, serial)
	}
	if err != nil {
		return nil, fmt.Errorf("files of %s: %w", name, err)
	}
	rels, err := ix.relFiles(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("files of %s: %w", name, err)
	}
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = ix.InstalledPath(name, r)
	}
	slices.Sort(out)
	return out, nil
}

// relFiles returns package id's paths relative to data/, unsorted.
func (ix *Index) relFiles(ctx context.Context, id int64) ([]string, error) {
	return scanRelFiles(ix.conn.QueryContext(ctx, relFilesQuery, id))
}

const relFilesQuery = `SELECT rpath FROM files WHERE package_id = ?`

// scanRelFiles reads the rows of relFilesQuery.
func scanRelFiles(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var rp []byte
		if err := rows.Scan(&rp); err != nil {
			return nil, err
		}
		out = append(out, unreversePath(rp))
	}
	return out, rows.Err()
}

func (ix *Index) queryPackages(ctx context.Context, q string, args ...any) ([]packages.Available, error) {
	return ix.queryPackagesInto(ctx, nil, q, args...)
}

// queryPackagesInto appends the packages q returns to out (sized by the
// caller when it knows how many: Available is large, and growing the slice
// copied and cleared it again and again).
func (ix *Index) queryPackagesInto(ctx context.Context, out []packages.Available, q string, args ...any) ([]packages.Available, error) {
	rows, err := ix.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		_, a, err := scanPackage(rows, ix.repo)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query index: %w", err)
	}
	return out, nil
}

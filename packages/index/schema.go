package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/packets-dev/packets/packages"
)

// formatVersion is the index format this package writes and reads. A
// reader refuses another; BuildRepo reuses rows only from an index of the
// same format.
const formatVersion = "1"

// schema is the index database. Every package row is one archive of the
// repository; files holds every non-directory path the archive installs,
// relative to data/, stored byte-reversed with a leading "/" (rpath) so that
// a suffix search at a path-component boundary is a range scan of
// files_rpath (created after the bulk load, see postLoad).
const schema = `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE packages (
	id             INTEGER PRIMARY KEY,
	name           TEXT NOT NULL,
	version        TEXT NOT NULL,
	family         TEXT NOT NULL,
	serial         INTEGER NOT NULL,
	description    TEXT NOT NULL,
	author         TEXT NOT NULL,
	depends        TEXT NOT NULL,         -- JSON array: ["ncurses >= 6.0"]
	filename       TEXT NOT NULL UNIQUE,  -- from the repository root: "packages/htop-3.3.0.tar.zst"
	sha256         TEXT NOT NULL,         -- of the archive, 64 lowercase hex digits
	size           INTEGER NOT NULL,      -- of the archive
	installed_size INTEGER NOT NULL,      -- bytes of regular files under data/
	install_hook   INTEGER NOT NULL,      -- 1 if the archive has install.lua
	remove_hook    INTEGER NOT NULL,      -- 1 if the archive has remove.lua
	config         TEXT NOT NULL,         -- JSON array of archive paths: ["data/etc/app.conf"]
	setuid         TEXT NOT NULL,         -- JSON array of archive paths
	UNIQUE (family, serial)
);
CREATE INDEX packages_name ON packages (name, serial);
CREATE TABLE files (
	package_id INTEGER NOT NULL REFERENCES packages (id),
	rpath      BLOB NOT NULL,             -- reverse("/" + path under data/)
	PRIMARY KEY (package_id, rpath)
) WITHOUT ROWID;
`

// postLoad runs after the rows are in: one sort instead of a million
// scattered index inserts.
const postLoad = `
CREATE INDEX files_rpath ON files (rpath);
CREATE INDEX packages_sha256 ON packages (sha256);
`

// pkgCols are the columns scanPackage reads, in order.
const pkgCols = `p.id, p.name, p.version, p.family, p.serial, p.description, p.author, p.depends,
	p.filename, p.sha256, p.size, p.installed_size, p.install_hook, p.remove_hook, p.config, p.setuid`

// pkgRow is one package of an index being written.
type pkgRow struct {
	packages.Available
	files []string // non-directory paths under data/, relative to it ("bin/htop")
	oldID int64    // when not 0, the row's id in the previous index, whose files are copied
}

// dsn makes a SQLite URI for path with the given query.
func dsn(path, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: query}
	return u.String(), nil
}

// reversePath maps a path under data/ to its rpath.
func reversePath(rel string) []byte {
	b := make([]byte, len(rel)+1)
	b[len(rel)] = '/'
	for i := 0; i < len(rel); i++ {
		b[len(rel)-1-i] = rel[i]
	}
	return b
}

// unreversePath is the inverse of reversePath.
func unreversePath(rpath []byte) string {
	if len(rpath) == 0 {
		return ""
	}
	b := make([]byte, len(rpath)-1)
	for i := range b {
		b[i] = rpath[len(rpath)-2-i]
	}
	return string(b)
}

// fileBatch is how many files rows one INSERT statement carries: a
// statement per row costs several times more in the driver than in SQLite.
const fileBatch = 64

// writer fills a new index database in one transaction.
type writer struct {
	db    *sql.DB
	tx    *sql.Tx
	pkg   *sql.Stmt
	files map[int]*sql.Stmt // by the number of rows it inserts, prepared when first needed
}

// createIndexDB creates the schema in the empty file at path. The file is a
// temporary one: journaling and syncs are off, and the caller makes the
// finished file durable before renaming it into place.
func createIndexDB(ctx context.Context, path string) (*writer, error) {
	name, err := dsn(path, "")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	w := &writer{db: db}
	if err := w.init(ctx); err != nil {
		w.abort()
		return nil, fmt.Errorf("create index %s: %w", path, err)
	}
	return w, nil
}

func (w *writer) init(ctx context.Context) error {
	for _, q := range []string{"PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF", "PRAGMA cache_size = -65536", schema} {
		if _, err := w.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var err error
	if w.tx, err = w.db.BeginTx(ctx, nil); err != nil {
		return err
	}
	w.pkg, err = w.tx.PrepareContext(ctx, `INSERT INTO packages (id, name, version, family, serial, description, author, depends,
		filename, sha256, size, installed_size, install_hook, remove_hook, config, setuid)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	w.files = map[int]*sql.Stmt{}
	return nil
}

// filesStmt returns the statement that inserts n files rows.
func (w *writer) filesStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if st, ok := w.files[n]; ok {
		return st, nil
	}
	values := strings.Repeat("(?, ?), ", n-1) + "(?, ?)"
	st, err := w.tx.PrepareContext(ctx, `INSERT INTO files (package_id, rpath) VALUES `+values)
	if err != nil {
		return nil, err
	}
	w.files[n] = st
	return st, nil
}

// add inserts one package and its files under id.
func (w *writer) add(ctx context.Context, id int64, p *pkgRow) error {
	deps := make([]string, len(p.Dependencies))
	for i, d := range p.Dependencies {
		deps[i] = d.String()
	}
	_, err := w.pkg.ExecContext(ctx, id, p.Name, p.Version, p.Family, p.Serial, p.Description, p.Author, jsonList(deps),
		p.Filename, p.Digest.String(), p.Size, p.InstalledSize, p.Hooks.Install != "", p.Hooks.Remove != "",
		jsonList(p.Files.Config), jsonList(p.Files.Setuid))
	if err != nil {
		return fmt.Errorf("insert %s: %w", p.Filename, err)
	}
	args := make([]any, 0, 2*fileBatch)
	for files := p.files; len(files) > 0; {
		chunk := files[:min(len(files), fileBatch)]
		files = files[len(chunk):]
		st, err := w.filesStmt(ctx, len(chunk))
		if err != nil {
			return err
		}
		args = args[:0]
		for _, f := range chunk {
			args = append(args, id, reversePath(f))
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert files of %s: %w", p.Filename, err)
		}
	}
	return nil
}

// finish records r's fields in meta, commits, builds the search indexes and
// closes the database.
func (w *writer) finish(ctx context.Context, r Release) error {
	meta := [][2]string{
		{"format", formatVersion},
		{"repo", r.Repo},
		{"version", strconv.FormatInt(r.Version, 10)},
		{"issued", r.Issued.UTC().Format(time.RFC3339)},
		{"expires", r.Expires.UTC().Format(time.RFC3339)},
	}
	for _, kv := range meta {
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, kv[0], kv[1]); err != nil {
			w.abort()
			return err
		}
	}
	w.pkg.Close()
	for _, st := range w.files {
		st.Close()
	}
	if err := w.tx.Commit(); err != nil {
		w.abort()
		return err
	}
	if _, err := w.db.ExecContext(ctx, postLoad); err != nil {
		w.abort()
		return err
	}
	if _, err := w.db.ExecContext(ctx, "ANALYZE"); err != nil {
		w.abort()
		return err
	}
	return w.db.Close()
}

// abort abandons the database; the caller removes the file.
func (w *writer) abort() {
	if w.tx != nil {
		w.tx.Rollback()
	}
	w.db.Close()
}

// isArchivePath reports whether p is a relative path of plain file names,
// such as "packages/htop-3.3.0.tar.zst": safe to append to a mirror URL.
func isArchivePath(p string) bool {
	for c := range strings.SplitSeq(p, "/") {
		if !isSafeFileName(c) {
			return false
		}
	}
	return p != ""
}

func jsonList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s) // a []string always marshals
	return string(b)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanPackage reads pkgCols. The index is signed, but what it says becomes
// file names and plans, so every field is validated as a manifest would be.
func scanPackage(sc scanner, repo string) (int64, packages.Available, error) {
	var (
		id                                               int64
		a                                                packages.Available
		name, version, family, deps, sha, config, setuid string
		install, remove                                  bool
	)
	err := sc.Scan(&id, &name, &version, &family, &a.Serial, &a.Description, &a.Author, &deps,
		&a.Filename, &sha, &a.Size, &a.InstalledSize, &install, &remove, &config, &setuid)
	if err != nil {
		return 0, a, err
	}
	a.Repo = repo
	a.Name, a.Version = packages.Name(name), packages.Version(version)
	if err := a.Name.Validate(); err != nil {
		return 0, a, fmt.Errorf("index package %d: %w", id, err)
	}
	if err := a.Version.Validate(); err != nil {
		return 0, a, fmt.Errorf("index package %s: %w", name, err)
	}
	if a.Family, err = packages.ParseFamily(family); err != nil {
		return 0, a, fmt.Errorf("index package %s: %w", name, err)
	}
	if a.Digest, err = packages.ParseDigest(sha); err != nil {
		return 0, a, fmt.Errorf("index package %s: %w", name, err)
	}
	if !isArchivePath(a.Filename) {
		return 0, a, fmt.Errorf("index package %s: file name %q is not a plain relative path", name, a.Filename)
	}
	if install {
		a.Hooks.Install = packages.InstallHook
	}
	if remove {
		a.Hooks.Remove = packages.RemoveHook
	}
	var depStrs []string
	for _, j := range []struct {
		src string
		dst *[]string
	}{{deps, &depStrs}, {config, &a.Files.Config}, {setuid, &a.Files.Setuid}} {
		if err := decodeStrings(j.src, j.dst); err != nil {
			return 0, a, fmt.Errorf("index package %s: %w", name, err)
		}
		if len(*j.dst) == 0 {
			*j.dst = nil // as a parsed manifest has it
		}
	}
	for _, s := range depStrs {
		d, err := packages.ParseDependency(s)
		if err != nil {
			return 0, a, fmt.Errorf("index package %s: dependency %q: %w", name, s, err)
		}
		a.Dependencies = append(a.Dependencies, d)
	}
	return id, a, nil
}

// decodeStrings decodes a JSON array of strings into dst. The index writes
// these arrays with encoding/json; the common shapes (empty, and strings
// without escapes) are read directly, the rest by encoding/json: loading a
// catalogue of 63,000 packages spent a tenth of its time in json's
// reflection.
func decodeStrings(src string, dst *[]string) error {
	if src == "[]" || src == "null" {
		return nil
	}
	if out, ok := simpleStrings(src); ok {
		*dst = out
		return nil
	}
	return json.Unmarshal([]byte(src), dst)
}

// simpleStrings parses ["a","b c"] with no escapes and no other
// whitespace than encoding/json writes (none); ok is false for anything
// else.
func simpleStrings(src string) (out []string, ok bool) {
	if len(src) < 2 || src[0] != '[' || src[len(src)-1] != ']' || strings.ContainsAny(src, "\\\t\n\r") {
		return nil, false
	}
	rest := src[1 : len(src)-1]
	for {
		if len(rest) < 2 || rest[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, false
		}
		s := rest[1 : 1+end]
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) {
			return nil, false
		}
		out = append(out, s)
		rest = rest[end+2:]
		if rest == "" {
			return out, true
		}
		if rest[0] != ',' {
			return nil, false
		}
		rest = rest[1:]
	}
}

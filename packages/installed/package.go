package installed

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/packets-dev/packets/packages"
)

// Reason says why a package is installed.
type Reason string

// The reasons a package can be installed for.
const (
	ReasonExplicit   Reason = "explicit"   // the state file declares it
	ReasonDependency Reason = "dependency" // another package needs it
)

// Package is an installed package's receipt: what was installed, from
// where, when, by whom and why, and the hook scripts needed to remove it
// even when its archive is gone.
type Package struct {
	Name          packages.Name
	Version       packages.Version
	Family        packages.Family
	Serial        int64
	Description   string
	Dependencies  []packages.Dependency
	Repo          string          // the repository it came from; "" is the default one
	Digest        packages.Digest // SHA-256 of the archive
	Size          int64           // archive size in bytes
	InstalledSize int64           // bytes of regular files it installed
	Reason        Reason
	InstalledAt   time.Time // set at commit when zero
	InstalledBy   string    // user name or uid of whoever ran the command
	Source        string    // URL or peer the archive was fetched from
	Key           string    // id of the key that verified the index listing it
	Options       map[string]string
	InstallHook   string // install.lua, "" when the package has none
	RemoveHook    string // remove.lua, "" when the package has none
	DataDir       string // the package's own dir at install time, "/opt/packets/htop"
}

// Ref names the package's build.
func (p *Package) Ref() packages.Ref { return packages.Ref{Name: p.Name, Version: p.Version} }

// FileType is the kind of an owned path.
type FileType string

// The kinds of owned paths.
const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
)

// File is one path a package owns.
type File struct {
	Package  packages.Name
	Path     string          // absolute machine path, "/opt/packets/htop/data/bin/htop"
	Type     FileType        //
	Mode     fs.FileMode     // permission and setuid/setgid/sticky bits only
	Size     int64           // regular files
	Digest   packages.Digest // regular files
	Link     string          // symlink target
	MTime    time.Time       // after install; what verify --fast compares
	Config   bool            // a config file: kept when the user modified it
	FromHook bool            // created by a hook rather than extracted
}

// packageColumns lists the packages table's columns in scan order.
const packageColumns = `name, version, family, serial, description, dependencies, repo,
	archive_sha256, archive_size, installed_size, reason, installed_at, installed_by,
	source, key, options, install_hook, remove_hook, data_dir`

// scanPackage reads one row of packageColumns.
func scanPackage(row interface{ Scan(...any) error }) (*Package, error) {
	var (
		p             Package
		deps, opts    string
		digest        string
		installedUnix int64
	)
	err := row.Scan(&p.Name, &p.Version, &p.Family, &p.Serial, &p.Description, &deps, &p.Repo,
		&digest, &p.Size, &p.InstalledSize, &p.Reason, &installedUnix, &p.InstalledBy,
		&p.Source, &p.Key, &opts, &p.InstallHook, &p.RemoveHook, &p.DataDir)
	if err != nil {
		return nil, err
	}
	p.InstalledAt = time.Unix(installedUnix, 0).UTC()
	return &p, p.decode(digest, deps, opts)
}

// briefColumns are the columns of packages a plan reads (Brief).
const briefColumns = `name, version, family, serial, dependencies, repo, archive_sha256, reason, options`

// scanBrief reads one row of briefColumns.
func scanBrief(row interface{ Scan(...any) error }) (*Package, error) {
	var (
		p                  Package
		deps, opts, digest string
	)
	if err := row.Scan(&p.Name, &p.Version, &p.Family, &p.Serial, &deps, &p.Repo, &digest, &p.Reason, &opts); err != nil {
		return nil, err
	}
	return &p, p.decode(digest, deps, opts)
}

// decode fills the digest, dependencies and options from their columns.
func (p *Package) decode(digest, deps, opts string) error {
	var err error
	if p.Digest, err = packages.ParseDigest(digest); err != nil {
		return fmt.Errorf("package %s: %w", p.Name, err)
	}
	var depStrings []string
	if deps != "[]" { // most packages: spare encoding/json's reflection
		if err := json.Unmarshal([]byte(deps), &depStrings); err != nil {
			return fmt.Errorf("package %s: dependencies: %w", p.Name, err)
		}
	}
	for _, s := range depStrings {
		d, err := packages.ParseDependency(s)
		if err != nil {
			return fmt.Errorf("package %s: %w", p.Name, err)
		}
		p.Dependencies = append(p.Dependencies, d)
	}
	if opts != "{}" {
		if err := json.Unmarshal([]byte(opts), &p.Options); err != nil {
			return fmt.Errorf("package %s: options: %w", p.Name, err)
		}
	}
	if len(p.Options) == 0 {
		p.Options = nil // as it went in: no options
	}
	return nil
}

// putPackage inserts or replaces p's row.
func putPackage(tx *sql.Tx, p *Package) error {
	deps := make([]string, len(p.Dependencies))
	for i, d := range p.Dependencies {
		deps[i] = d.String()
	}
	depJSON, err := json.Marshal(deps)
	if err != nil {
		return err
	}
	opts := p.Options
	if opts == nil {
		opts = map[string]string{}
	}
	optJSON, err := json.Marshal(opts)
	if err != nil {
		return err
	}
	// An upsert, not INSERT OR REPLACE: REPLACE deletes the old row first,
	// and the delete would cascade to the package's files.
	_, err = tx.Exec(`INSERT INTO packages (`+packageColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			version = excluded.version, family = excluded.family, serial = excluded.serial,
			description = excluded.description, dependencies = excluded.dependencies,
			repo = excluded.repo, archive_sha256 = excluded.archive_sha256,
			archive_size = excluded.archive_size, installed_size = excluded.installed_size,
			reason = excluded.reason, installed_at = excluded.installed_at,
			installed_by = excluded.installed_by, source = excluded.source, key = excluded.key,
			options = excluded.options, install_hook = excluded.install_hook,
			remove_hook = excluded.remove_hook, data_dir = excluded.data_dir`,
		p.Name, p.Version, p.Family, p.Serial, p.Description, string(depJSON), p.Repo,
		p.Digest.String(), p.Size, p.InstalledSize, p.Reason, p.InstalledAt.Unix(), p.InstalledBy,
		p.Source, p.Key, string(optJSON), p.InstallHook, p.RemoveHook, p.DataDir)
	if err != nil {
		return fmt.Errorf("record package %s: %w", p.Name, err)
	}
	return nil
}

// fileColumns lists the files table's columns in scan order.
const fileColumns = `package, path, type, mode, size, sha256, link, mtime, config, from_hook`

func scanFile(row interface{ Scan(...any) error }) (File, error) {
	var (
		f      File
		mode   uint32
		digest string
		mtime  int64
	)
	if err := row.Scan(&f.Package, &f.Path, &f.Type, &mode, &f.Size, &digest, &f.Link, &mtime, &f.Config, &f.FromHook); err != nil {
		return f, err
	}
	f.Mode = fs.FileMode(mode)
	if mtime != 0 {
		f.MTime = time.Unix(0, mtime).UTC()
	}
	if digest != "" {
		d, err := packages.ParseDigest(digest)
		if err != nil {
			return f, fmt.Errorf("file %s: %w", f.Path, err)
		}
		f.Digest = d
	}
	return f, nil
}

// OwnedError says that a path is already owned by another package.
type OwnedError struct {
	Path  string
	Owner packages.Name // who owns it
	Want  packages.Name // who tried to take it
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("%s: owned by %s, not %s", e.Path, e.Owner, e.Want)
}

// putFiles inserts or updates the rows of files with one prepared
// statement. A path already owned by another package is never taken over:
// that is an *OwnedError.
func putFiles(tx *sql.Tx, files []File) error {
	up, err := newFileUpserter(tx)
	if err != nil {
		return err
	}
	defer up.close()
	return up.put(files)
}

// fileUpserter is putFiles' prepared statement, for a transaction that
// puts rows more than once.
type fileUpserter struct {
	tx *sql.Tx
	st *sql.Stmt
}

func newFileUpserter(tx *sql.Tx) (*fileUpserter, error) {
	st, err := tx.Prepare(`INSERT INTO files (` + fileColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (path) DO UPDATE SET
			type = excluded.type, mode = excluded.mode, size = excluded.size,
			sha256 = excluded.sha256, link = excluded.link, mtime = excluded.mtime,
			config = excluded.config, from_hook = excluded.from_hook
		WHERE files.package = excluded.package`)
	if err != nil {
		return nil, err
	}
	return &fileUpserter{tx: tx, st: st}, nil
}

func (u *fileUpserter) put(files []File) error {
	for _, f := range files {
		res, err := u.st.Exec(fileArgs(f)...)
		if err != nil {
			return fmt.Errorf("record file %s of %s: %w", f.Path, f.Package, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			var owner packages.Name
			if err := u.tx.QueryRow(`SELECT package FROM files WHERE path = ?`, f.Path).Scan(&owner); err != nil {
				return fmt.Errorf("record file %s of %s: %w", f.Path, f.Package, err)
			}
			return &OwnedError{Path: f.Path, Owner: owner, Want: f.Package}
		}
	}
	return nil
}

func (u *fileUpserter) close() { u.st.Close() }

// fileArgs are f's values in fileColumns order.
func fileArgs(f File) []any {
	digest := ""
	if f.Type == TypeFile {
		digest = f.Digest.String()
	}
	var mtime int64
	if !f.MTime.IsZero() {
		mtime = f.MTime.UnixNano()
	}
	return []any{f.Package, f.Path, f.Type, uint32(f.Mode), f.Size, digest, f.Link, mtime, f.Config, f.FromHook}
}

// insertChunk is how many rows a fileInserter writes per statement: one
// statement per row costs more in the driver than SQLite's own work.
const insertChunk = 100

// insertFiles inserts new rows, many per statement. A path that has an
// owner already fails the whole SQL transaction (the commit's conflict
// checks make that impossible; the constraint is the last guard).
func insertFiles(tx *sql.Tx, files []File) error {
	w, err := newFileInserter(tx)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.add(files); err != nil {
		return err
	}
	return w.flush()
}

// fileInserter inserts rows as insertFiles does, insertChunk at a time
// through one prepared statement, for a caller that has them a few at a
// time: add buffers, flush writes what is left.
type fileInserter struct {
	tx   *sql.Tx
	full *sql.Stmt
	args []any
}

func newFileInserter(tx *sql.Tx) (*fileInserter, error) {
	full, err := tx.Prepare(`INSERT INTO files (` + fileColumns + `) VALUES ` + valuesList(insertChunk))
	if err != nil {
		return nil, fmt.Errorf("record files: %w", err)
	}
	return &fileInserter{tx: tx, full: full, args: make([]any, 0, fileColumnCount*insertChunk)}, nil
}

func (w *fileInserter) add(files []File) error {
	for _, f := range files {
		w.args = append(w.args, fileArgs(f)...)
		if len(w.args) == cap(w.args) {
			if _, err := w.full.Exec(w.args...); err != nil {
				return fmt.Errorf("record files: %w", err)
			}
			w.args = w.args[:0]
		}
	}
	return nil
}

func (w *fileInserter) flush() error {
	if len(w.args) == 0 {
		return nil
	}
	_, err := w.tx.Exec(`INSERT INTO files (`+fileColumns+`) VALUES `+valuesList(len(w.args)/fileColumnCount), w.args...)
	if err != nil {
		return fmt.Errorf("record files: %w", err)
	}
	w.args = w.args[:0]
	return nil
}

func (w *fileInserter) close() { w.full.Close() }

// fileColumnCount is the number of fileColumns.
const fileColumnCount = 10

// valuesList is the VALUES list of n rows of fileColumns.
func valuesList(n int) string {
	row := "(?" + strings.Repeat(", ?", fileColumnCount-1) + "), "
	return strings.TrimSuffix(strings.Repeat(row, n), ", ")
}

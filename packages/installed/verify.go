package installed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/packets-dev/packets/packages"
)

// Drift is one difference between what installed.db records and the disk.
type Drift struct {
	Package packages.Name
	Path    string
	Problem string // "missing", "sha256 differs", "mode 0644, want 0755", ...
}

func (d Drift) String() string { return fmt.Sprintf("%s: %s: %s", d.Package, d.Path, d.Problem) }

// Verify checks that every path the named packages own (all packages when
// names is empty) is on disk with the recorded type, mode, size, link
// target and, unless fast, SHA-256; fast compares size, mode and mtime
// instead of reading contents. A config file is only checked to exist with
// its type: the administrator may edit it (as debsums does by default).
// A name that is not installed is an error wrapping ErrNotInstalled. It
// first runs Check: a damaged database is a *DamagedError, not drift.
func (db *DB) Verify(ctx context.Context, root *os.Root, names []packages.Name, fast bool) ([]Drift, error) {
	if err := db.Check(ctx); err != nil {
		return nil, err
	}
	dc := dirCache{root: root}
	defer dc.close()
	var drift []Drift
	check := func(f File) {
		if p := checkFile(&dc, f, fast); p != "" {
			drift = append(drift, Drift{Package: f.Package, Path: f.Path, Problem: p})
		}
	}
	if len(names) == 0 {
		// Every file, with one query, in package then path order.
		err := eachFile(ctx, db.sql, `SELECT `+fileColumns+` FROM files ORDER BY package, path`, check)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		return drift, nil
	}
	for _, n := range names {
		if _, err := db.Package(ctx, n); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		err := eachFile(ctx, db.sql, `SELECT `+fileColumns+` FROM files WHERE package = ? ORDER BY path`, check, n)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	return drift, nil
}

// eachFile calls fn with every file query returns, stopping when ctx ends.
func eachFile(ctx context.Context, q querier, query string, fn func(File), args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := scanFile(rows)
		if err != nil {
			return err
		}
		fn(f)
	}
	return rows.Err()
}

// checkFile returns what is wrong with f on disk, or "".
func checkFile(dc *dirCache, f File, fast bool) string {
	dir, base, err := dc.at(rel(f.Path))
	var fi fs.FileInfo
	if err == nil {
		fi, err = dir.Lstat(base)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "missing"
	}
	if err != nil {
		return err.Error()
	}
	got := fileFromInfo(f.Package, f.Path, fi)
	switch {
	case got.Type != f.Type:
		return fmt.Sprintf("is a %s, want a %s", got.Type, f.Type)
	case f.Config:
		return ""
	case f.Type == TypeSymlink:
		link, err := dir.Readlink(base)
		if err != nil {
			return err.Error()
		}
		if link != f.Link {
			return fmt.Sprintf("links to %q, want %q", link, f.Link)
		}
		return ""
	case got.Mode != f.Mode:
		return fmt.Sprintf("mode %s, want %s", modeString(got.Mode), modeString(f.Mode))
	case f.Type != TypeFile:
		return ""
	case got.Size != f.Size:
		return fmt.Sprintf("size %d, want %d", got.Size, f.Size)
	case fast:
		if !got.MTime.Equal(f.MTime) {
			return "mtime differs"
		}
		return ""
	}
	d, err := hashFile(dir, base)
	if err != nil {
		return err.Error()
	}
	if d != f.Digest {
		return "sha256 differs"
	}
	return ""
}

// modeString formats permission and special bits in octal: "0644", "4755".
func modeString(m fs.FileMode) string {
	return fmt.Sprintf("%04o", packages.UnixMode(m))
}

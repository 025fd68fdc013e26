package installed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
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
	if len(names) == 0 {
		s, err := db.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		for n := range s.Packages {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var drift []Drift
	dc := dirCache{root: root}
	defer dc.close()
	for _, n := range names {
		if _, err := db.Package(ctx, n); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		files, err := db.Files(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if p := checkFile(&dc, f, fast); p != "" {
				drift = append(drift, Drift{Package: n, Path: f.Path, Problem: p})
			}
		}
	}
	return drift, nil
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

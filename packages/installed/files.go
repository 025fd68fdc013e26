package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// newRows describes New's files once published (describeNew), plus Old's
// hook-made paths that still exist, which pass to New. A kept config file
// is described as the user's file it is, with the hash of the version
// shipped, as dpkg keeps for conffiles.
func (db *DB) newRows(ctx context.Context, l *Layout, c *change) ([]File, error) {
	if c.New == nil {
		return nil, nil
	}
	config := map[string]bool{}
	for _, p := range c.row.p.Config {
		config[p] = true
	}
	rows, err := describeNew(l, c, config, true)
	if err != nil || c.Old == nil {
		return rows, err
	}
	have := c.finals
	old, err := packageFiles(ctx, db.sql, c.Old.Name)
	if err != nil {
		return nil, err
	}
	dc := dirCache{root: l.Root}
	defer dc.close()
	for _, f := range old {
		if !f.FromHook || have.has(f.Path) {
			continue
		}
		var st unix.Stat_t
		if err := dc.lstat(rel(f.Path), &st); err != nil {
			continue // the old remove hook took it away
		}
		f.Package = c.New.Name
		rows = append(rows, f)
	}
	slices.SortFunc(rows, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return rows, nil
}

// stagedRows describes an Install's files as newRows will find them once
// published, before they are (describeNew). An Install keeps no config
// file of the user's and has no hook-made paths to take over.
func stagedRows(l *Layout, c *change) ([]File, error) {
	config := map[string]bool{}
	for _, e := range c.contents.Entries {
		if c.contents.Manifest.IsConfig(e.Path) {
			config[path.Join(c.New.DataDir, e.Path)] = true
		}
	}
	return describeNew(l, c, config, false)
}

// describeNew describes the package dir, the data dir and every archive
// entry of c.New, in path order: a regular file as Extract wrote it (the
// renames keep its type, mode, size and mtime), an archive directory with
// the mode Publish gives it, anything else and every config file (which
// may be a modified one kept) from an lstat, at its final path once
// published, else where it is staged (packages.Staged.At). The hash and
// link target come from the archive.
func describeNew(l *Layout, c *change, config map[string]bool, published bool) ([]File, error) {
	have := c.finals
	dc := dirCache{root: l.Root}
	defer dc.close()
	rows := make([]File, 0, len(have.sorted))
	// In path order, so that dc opens each directory once.
	for _, p := range have.sorted {
		var sf *packages.StagedFile
		if i := have.index[p]; i >= 0 {
			sf = &c.staged.Files[i] // Files[i] is Entries[i]'s
		} else { // the package dir or its data dir
			sf = &packages.StagedFile{Final: rel(p)}
		}
		if sf.Type == packages.TypeFile && !config[p] {
			rows = append(rows, File{Package: c.New.Name, Path: p, Type: TypeFile,
				Mode: sf.Mode, Size: sf.Size, MTime: sf.MTime, Digest: sf.Digest})
			continue
		}
		at := rel(p)
		if !published {
			at = c.staged.At(*sf)
		}
		var st unix.Stat_t
		if err := dc.lstat(at, &st); err != nil {
			return nil, err
		}
		f := fileFromStat(c.New.Name, p, &st)
		f.Digest, f.Config = sf.Digest, config[p]
		switch sf.Type {
		case packages.TypeSymlink:
			f.Link = sf.Link
		case packages.TypeDir:
			f.Mode = sf.Mode // before Publish, owner rwx at least
		}
		rows = append(rows, f)
	}
	return rows, nil
}

// hookRows describes the paths a hook of pkg created, looking them up
// through dc. A path that no longer exists is skipped; one owned by
// another package is an *OwnedError and is left out, as is one that
// claimed (when not nil) holds for another package; one pkg owns already
// keeps its flags. claimed gains the paths described.
func (db *DB) hookRows(ctx context.Context, l *Layout, dc *dirCache, pkg *Package, created []string, claimed map[string]packages.Name) ([]File, error) {
	var (
		rows []File
		errs []error
	)
	for _, p := range created {
		if !path.IsAbs(p) {
			errs = append(errs, fmt.Errorf("hook of %s reported a relative path %q", pkg.Name, p))
			continue
		}
		p = path.Clean(p)
		if !within(p, pkg.DataDir) && (l.BinDir == "" || p == path.Clean(l.BinDir) || !within(p, l.BinDir)) {
			errs = append(errs, fmt.Errorf("hook of %s reported %s, outside %s and the bin dir %q", pkg.Name, p, pkg.DataDir, l.BinDir))
			continue
		}
		var st unix.Stat_t
		err := dc.lstat(rel(p), &st)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := fileFromStat(pkg.Name, p, &st)
		f.FromHook = true
		switch f.Type {
		case TypeFile:
			if f.Digest, err = dc.hash(rel(p)); err != nil {
				errs = append(errs, err)
				continue
			}
		case TypeSymlink:
			if f.Link, err = dc.readlink(rel(p)); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		byPath, err := db.prepared(ctx, `SELECT `+fileColumns+` FROM files WHERE path = ?`)
		if err != nil {
			return nil, err
		}
		old, err := scanFile(byPath.QueryRowContext(ctx, p))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, err
		case old.Package != pkg.Name:
			errs = append(errs, &OwnedError{Path: p, Owner: old.Package, Want: pkg.Name})
			continue
		default:
			f.Config, f.FromHook = old.Config, old.FromHook
		}
		if claimed != nil {
			if o, ok := claimed[p]; ok && o != pkg.Name {
				errs = append(errs, &OwnedError{Path: p, Owner: o, Want: pkg.Name})
				continue
			}
			claimed[p] = pkg.Name
		}
		rows = append(rows, f)
	}
	return rows, errors.Join(errs...)
}

// within reports whether machine path p is dir or below it.
func within(p, dir string) bool {
	dir = path.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// sweepStaged deletes what extractions of the given tags left for the
// package dir pkgDir: temps below it, and the tree staged whole beside it
// (packages.Staged.TopTemp) when the package dir was new.
func sweepStaged(root *os.Root, pkgDir string, tags []string) error {
	for _, t := range tags {
		top := rel(packages.TempName(pkgDir, t, 0))
		if err := root.RemoveAll(top); err != nil {
			return fmt.Errorf("sweep %s: %w", top, err)
		}
	}
	return sweepTemps(root, pkgDir, tags)
}

// sweepTemps deletes every temp of the given tags under the machine dir: a
// directory (a tree staged whole) with everything in it.
func sweepTemps(root *os.Root, dir string, tags []string) error {
	prefixes := make([]string, len(tags))
	for i, t := range tags {
		prefixes[i] = packages.TempPrefix + t + "-"
	}
	err := fs.WalkDir(root.FS(), rel(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !strings.HasPrefix(d.Name(), packages.TempPrefix) {
			return nil
		}
		for _, pre := range prefixes {
			if !strings.HasPrefix(d.Name(), pre) {
				continue
			}
			if d.IsDir() {
				if err := root.RemoveAll(p); err != nil {
					return err
				}
				return fs.SkipDir
			}
			if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			break
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep temps under %s: %w", dir, err)
	}
	return nil
}

// pruneDirs removes the empty directories at or below the machine dir that
// no package owns, deepest first: what an aborted extraction created.
func (db *DB) pruneDirs(ctx context.Context, root *os.Root, dir string) error {
	owned, err := db.ownedUnder(ctx, dir)
	if err != nil {
		return err
	}
	var dirs []string
	err = fs.WalkDir(root.FS(), rel(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if _, ok := owned["/"+p]; !ok {
				dirs = append(dirs, p)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune %s: %w", dir, err)
	}
	slices.Reverse(dirs) // WalkDir visits parents first
	for _, d := range dirs {
		err := root.Remove(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("prune %s: %w", dir, err)
		}
	}
	return nil
}

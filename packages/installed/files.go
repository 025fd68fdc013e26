package installed

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/packets-dev/packets/packages"
)

// modeBits are the parts of a mode that are recorded and verified.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// fileFromInfo describes the path p (a machine path) as it is on disk.
func fileFromInfo(pkg packages.Name, p string, fi fs.FileInfo) File {
	f := File{Package: pkg, Path: p, Mode: fi.Mode() & modeBits, MTime: fi.ModTime().UTC()}
	switch {
	case fi.IsDir():
		f.Type = TypeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		f.Type = TypeSymlink
	default:
		f.Type, f.Size = TypeFile, fi.Size()
	}
	return f
}

// dirCache keeps open, as *os.Roots, the directories from the root down to
// the one last used, so that going through the files of many packages in
// path order opens each directory once, with one openat from its parent
// (os.Root resolves a path a component at a time, with an openat each),
// rather than walking from the root for every file.
type dirCache struct {
	root  *os.Root
	chain []openDir // chain[i+1] is a child of chain[i]; the root itself is not in it
}

type openDir struct {
	path string // root-relative
	r    *os.Root
}

// at returns the open parent of root-relative p and p's base name.
func (c *dirCache) at(p string) (*os.Root, string, error) {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if dir == "." {
		c.truncate(0)
		return c.root, base, nil
	}
	keep := 0
	for keep < len(c.chain) && (dir == c.chain[keep].path || strings.HasPrefix(dir, c.chain[keep].path+"/")) {
		keep++
	}
	c.truncate(keep)
	parent, done := c.root, ""
	if keep > 0 {
		parent, done = c.chain[keep-1].r, c.chain[keep-1].path
	}
	if done != dir {
		rest := dir
		if done != "" {
			rest = dir[len(done)+1:]
		}
		for comp := range strings.SplitSeq(rest, "/") {
			r, err := parent.OpenRoot(comp)
			if err != nil {
				return nil, "", err
			}
			done = path.Join(done, comp)
			c.chain = append(c.chain, openDir{path: done, r: r})
			parent = r
		}
	}
	return parent, base, nil
}

func (c *dirCache) truncate(n int) {
	for _, d := range c.chain[n:] {
		d.r.Close()
	}
	c.chain = c.chain[:n]
}

func (c *dirCache) lstat(p string) (fs.FileInfo, error) {
	d, base, err := c.at(p)
	if err != nil {
		return nil, err
	}
	return d.Lstat(base)
}

func (c *dirCache) remove(p string) error {
	d, base, err := c.at(p)
	if err != nil {
		return err
	}
	return d.Remove(base)
}

func (c *dirCache) close() { c.truncate(0) }

// hashFile returns the SHA-256 of the regular file at root-relative p.
func hashFile(root *os.Root, p string) (packages.Digest, error) {
	var d packages.Digest
	f, err := root.Open(p)
	if err != nil {
		return d, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return d, err
	}
	h.Sum(d[:0])
	return d, nil
}

// newRows describes New's files as they now are on disk: the type, mode,
// size and mtime from lstat, the hash and link target from the archive
// (for a kept config file, the hash of the version shipped, as dpkg keeps
// for conffiles), plus Old's hook-made paths that still exist.
func (db *DB) newRows(ctx context.Context, l *Layout, c *change) ([]File, error) {
	if c.New == nil {
		return nil, nil
	}
	config := map[string]bool{}
	for _, p := range c.row.p.Config {
		config[p] = true
	}
	byPath := map[string]packages.Entry{}
	for _, e := range c.contents.Entries {
		byPath[path.Join(c.New.DataDir, e.Path)] = e
	}
	have := finals(c.New, c.contents)
	dc := dirCache{root: l.Root}
	defer dc.close()
	rows := make([]File, 0, len(have))
	// In path order, so that dc opens each directory once.
	for _, p := range slices.Sorted(maps.Keys(have)) {
		fi, err := dc.lstat(rel(p))
		if err != nil {
			return nil, err
		}
		f := fileFromInfo(c.New.Name, p, fi)
		if e, ok := byPath[p]; ok {
			f.Digest, f.Config = e.Digest, config[p]
			if e.Type == packages.TypeSymlink {
				f.Link = e.Link
			}
		}
		rows = append(rows, f)
	}
	if c.Old != nil {
		old, err := packageFiles(ctx, db.sql, c.Old.Name)
		if err != nil {
			return nil, err
		}
		for _, f := range old {
			if !f.FromHook || have[f.Path] {
				continue
			}
			if _, err := l.Root.Lstat(rel(f.Path)); err != nil {
				continue // the old remove hook took it away
			}
			f.Package = c.New.Name
			rows = append(rows, f)
		}
	}
	slices.SortFunc(rows, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return rows, nil
}

// hookRows describes the paths a hook of pkg created. A path that no
// longer exists is skipped; one owned by another package is an
// *OwnedError and is left out, as is one that claimed (when not nil) holds
// for another package; one pkg owns already keeps its flags. claimed gains
// the paths described.
func (db *DB) hookRows(ctx context.Context, l *Layout, pkg *Package, created []string, claimed map[string]packages.Name) ([]File, error) {
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
		fi, err := l.Root.Lstat(rel(p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := fileFromInfo(pkg.Name, p, fi)
		f.FromHook = true
		switch f.Type {
		case TypeFile:
			if f.Digest, err = hashFile(l.Root, rel(p)); err != nil {
				errs = append(errs, err)
				continue
			}
		case TypeSymlink:
			if f.Link, err = l.Root.Readlink(rel(p)); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		old, err := scanFile(db.sql.QueryRowContext(ctx, `SELECT `+fileColumns+` FROM files WHERE path = ?`, p))
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

// sweepTemps deletes every temp of the given tags under the machine dir.
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
		if d.IsDir() || !strings.HasPrefix(d.Name(), packages.TempPrefix) {
			return nil
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(d.Name(), pre) {
				if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				break
			}
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
	owned, err := ownedUnder(ctx, db.sql, dir)
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

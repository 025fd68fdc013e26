package index

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/packets-dev/packets/packages"
)

// FileMatch is one answer of SearchFile.
type FileMatch struct {
	Package packages.Available
	Path    string // where the file is installed: "/opt/packets/htop/data/bin/htop"
	Rel     string // the same, relative to the package's data/: "bin/htop"
}

// SearchFile finds the packages that install a path ending in suffix, where
// the suffix starts at a path-component boundary: "bin/htop" matches
// /opt/packets/htop/data/bin/htop and .../data/usr/bin/htop, not
// .../data/sbin/htop. A leading "/" changes nothing (a suffix that starts
// with "/" starts at a boundary anyway), so a whole installed path
// ("/opt/packets/htop/data/bin/htop") matches exactly that file. The suffix
// may reach into the package's directory ("htop/data/bin/htop" matches only
// the package named htop). Directories are not in the index, so only
// files, symlinks and hard links match. Results are sorted by package name,
// serial and path.
func (ix *Index) SearchFile(ctx context.Context, suffix string) ([]FileMatch, error) {
	comps, err := splitSuffix(suffix)
	if err != nil {
		return nil, err
	}
	// 1. The suffix lies inside the package's data/ tree: a range scan of
	//    the reversed paths.
	key := reversePath(strings.Join(comps, "/"))
	matches, err := ix.fileQuery(ctx, `f.rpath >= ? AND f.rpath < ?`, key, prefixEnd(key))
	if err != nil {
		return nil, err
	}
	// 2. The suffix reaches past data/ into "<data dir>/<name>/data": for
	//    every "data" component, what follows is the whole path under data/
	//    and what precedes must end the package's own directory.
	for j, c := range comps {
		if c != packages.DataDir || j == len(comps)-1 {
			continue
		}
		head := comps[:j]
		more, err := ix.fileQuery(ctx, `f.rpath = ?`, reversePath(strings.Join(comps[j+1:], "/")))
		if err != nil {
			return nil, err
		}
		for _, m := range more {
			if hasComponentSuffix(ix.packageDirComps(m.Package.Name), head) {
				matches = append(matches, m)
			}
		}
	}
	slices.SortFunc(matches, func(a, b FileMatch) int {
		return cmp.Or(cmp.Compare(a.Package.Name, b.Package.Name), cmp.Compare(a.Package.Serial, b.Package.Serial),
			cmp.Compare(a.Package.Filename, b.Package.Filename), cmp.Compare(a.Rel, b.Rel))
	})
	return slices.CompactFunc(matches, func(a, b FileMatch) bool {
		return a.Package.Filename == b.Package.Filename && a.Rel == b.Rel
	}), nil
}

// fileQuery returns the files matching a condition on f.rpath, with their
// packages.
func (ix *Index) fileQuery(ctx context.Context, cond string, args ...any) ([]FileMatch, error) {
	rows, err := ix.conn.QueryContext(ctx, `SELECT f.rpath, `+pkgCols+`
		FROM files f JOIN packages p ON p.id = f.package_id WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("search files: %w", err)
	}
	defer rows.Close()
	var out []FileMatch
	for rows.Next() {
		var rp []byte
		_, a, err := scanPackage(&prefixScanner{rows: rows, first: &rp}, ix.repo)
		if err != nil {
			return nil, err
		}
		rel := unreversePath(rp)
		out = append(out, FileMatch{Package: a, Rel: rel, Path: ix.InstalledPath(a.Name, rel)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search files: %w", err)
	}
	return out, nil
}

// prefixScanner scans one leading column into first, then the columns
// scanPackage asks for.
type prefixScanner struct {
	rows  interface{ Scan(...any) error }
	first any
}

func (s *prefixScanner) Scan(dest ...any) error {
	return s.rows.Scan(append([]any{s.first}, dest...)...)
}

// packageDirComps returns the components of "<data dir>/<name>".
func (ix *Index) packageDirComps(name packages.Name) []string {
	return strings.Split(strings.Trim(path.Join(ix.dataDir, string(name)), "/"), "/")
}

// hasComponentSuffix reports whether comps ends with suffix.
func hasComponentSuffix(comps, suffix []string) bool {
	return len(suffix) <= len(comps) && slices.Equal(comps[len(comps)-len(suffix):], suffix)
}

// splitSuffix cleans a search suffix into components. "." and ".."
// components are refused: a suffix is matched textually, and "a/../b" would
// never match what a user means.
func splitSuffix(s string) ([]string, error) {
	t := strings.Trim(s, "/")
	if t == "" {
		return nil, fmt.Errorf("search --file %q: give a file name or a path suffix such as bin/htop", s)
	}
	comps := strings.Split(t, "/")
	out := comps[:0]
	for _, c := range comps {
		switch c {
		case "":
			continue // "a//b" is "a/b"
		case ".", "..":
			return nil, fmt.Errorf("search --file %q: \".\" and \"..\" cannot be matched; give the path as installed", s)
		}
		out = append(out, c)
	}
	return out, nil
}

// prefixEnd returns the smallest byte string greater than every string
// that starts with p. p ends with '/' (reversePath's leading slash), so
// incrementing the last byte never overflows.
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	end[len(end)-1]++
	return end
}

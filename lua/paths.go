package lua

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's MAXSYMLINKS does.
const maxSymlinkHops = 40

// dirRoot is one directory a hook may reach, opened as an *os.Root on first
// use: most hooks touch one or two of them, and opening costs syscalls.
type dirRoot struct {
	prefix   string   // machine path, e.g. /usr/bin
	writable bool     // under one of Hook.Writable
	parent   *dirRoot // the innermost other hook directory holding this one
	host     *hostRoot
	keep     *keptRoots // not nil: taken from there, or left there once opened

	opened bool
	root   *os.Root // nil when the directory could not be opened (err)
	err    error
}

// hostRoot is the machine tree (Hook.Root), opened on first use.
type hostRoot struct {
	dir    string
	keep   *keptRoots // as dirRoot's
	opened bool
	root   *os.Root
	err    error
}

// keptRoots are directories a sandbox child opens once for all the hooks
// it runs, not once per hook: the machine tree (Hook.Root) and the bin
// dir, which all hooks share. No hook can replace either (a hook
// directory itself cannot be removed or renamed, and the machine tree is
// none of them), nor does an apply. A package dir is never kept: an apply
// replaces it between two batches of hooks.
type keptRoots struct {
	roots map[[2]string]*os.Root // by Hook.Root and machine path ("" for the tree)
}

func newKeptRoots() *keptRoots { return &keptRoots{roots: map[[2]string]*os.Root{}} }

// open returns the kept root of machine path p (the tree for ""), opening
// it with open the first time. A failure is not kept: the next hook tries
// again.
func (k *keptRoots) open(host, p string, open func() (*os.Root, error)) (*os.Root, error) {
	key := [2]string{host, p}
	if r, ok := k.roots[key]; ok {
		return r, nil
	}
	r, err := open()
	if err == nil {
		k.roots[key] = r
	}
	return r, err
}

func (k *keptRoots) close() {
	for key, r := range k.roots {
		_ = r.Close()
		delete(k.roots, key)
	}
}

// loc is a resolved machine path: the root it lives in and its name there.
type loc struct {
	dir     *dirRoot
	rel     string // "." for the root itself; never holds a symlink before its last element
	machine string
}

// newRoots lists the hook's directories, innermost first in lookup order.
// With keep, the machine tree and the bin dir come from there.
func newRoots(h Hook, keep *keptRoots) []*dirRoot {
	prefixes := append([]string{h.PackageDir, h.DataDir, h.BinDir}, h.writable()...)
	slices.SortFunc(prefixes, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	prefixes = slices.Compact(prefixes)
	host := &hostRoot{dir: h.Root, keep: keep}
	var roots []*dirRoot
	for _, p := range prefixes {
		d := &dirRoot{prefix: p, writable: under(p, h.writable()), host: host}
		for i := len(roots) - 1; i >= 0 && d.parent == nil; i-- {
			if under(p, []string{roots[i].prefix}) {
				d.parent = roots[i]
			}
		}
		if p == h.BinDir && d.parent == nil && !under(p, []string{h.PackageDir}) {
			d.keep = keep
		}
		roots = append(roots, d)
	}
	// Longest prefix first, so that lookups find the innermost root.
	slices.Reverse(roots)
	return roots
}

// open opens d: through its parent's root, so that a symlink on the way
// cannot take it elsewhere; a top-level one through the machine root, so that
// it cannot leave the machine tree.
func (d *dirRoot) open() (*os.Root, error) {
	if d.opened {
		return d.root, d.err
	}
	d.opened = true
	if d.keep != nil {
		d.root, d.err = d.keep.open(d.host.dir, d.prefix, d.openRoot)
	} else {
		d.root, d.err = d.openRoot()
	}
	return d.root, d.err
}

func (d *dirRoot) openRoot() (root *os.Root, err error) {
	switch {
	case d.parent != nil:
		var pr *os.Root
		if pr, err = d.parent.open(); err == nil {
			root, err = pr.OpenRoot(relTo(d.parent.prefix, d.prefix))
		}
	case filepath.Clean(d.host.dir) == "/":
		// Nothing can escape "/", and os.Root would refuse an absolute
		// symlink on the way (/opt -> /data/opt) that is fine here.
		root, err = os.OpenRoot(d.prefix)
	default:
		var hr *os.Root
		if hr, err = d.host.open(); err == nil {
			root, err = hr.OpenRoot(relTo("/", d.prefix))
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.prefix, Err: underlying(err)}
	}
	return root, nil
}

func (h *hostRoot) open() (*os.Root, error) {
	if !h.opened {
		h.opened = true
		open := func() (*os.Root, error) { return os.OpenRoot(h.dir) }
		if h.keep != nil {
			h.root, h.err = h.keep.open(h.dir, "", open)
		} else {
			h.root, h.err = open()
		}
	}
	return h.root, h.err
}

// underlying strips the *PathError that names a host path.
func underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// closeRoots closes the roots a hook opened, not the kept ones.
func closeRoots(roots []*dirRoot) {
	for _, d := range roots {
		if d.root != nil && d.keep == nil {
			_ = d.root.Close()
		}
	}
	if len(roots) > 0 {
		if h := roots[0].host; h.root != nil && h.keep == nil {
			_ = h.root.Close()
		}
	}
}

// common returns whichever of a and b holds the other (a hook directory
// nested in another was opened through it), or nil.
func common(a, b *dirRoot) *dirRoot {
	for d := a; d != nil; d = d.parent {
		if d == b {
			return b
		}
	}
	for d := b; d != nil; d = d.parent {
		if d == a {
			return a
		}
	}
	return nil
}

// under reports whether machine path p is one of prefixes or below one.
func under(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if p == pre || pre == "/" || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// relTo returns p relative to prefix, which holds it.
func relTo(prefix, p string) string {
	switch {
	case p == prefix:
		return "."
	case prefix == "/":
		return p[1:]
	}
	return p[len(prefix)+1:]
}

// escapeError is a path that leads outside every hook directory.
type escapeError struct{ path, resolved string }

func (e *escapeError) Error() string {
	if e.resolved != e.path {
		return fmt.Sprintf("%s resolves to %s, outside the hook's directories", e.path, e.resolved)
	}
	return e.path + " is outside the hook's directories"
}

// machinePath turns a Lua path into a clean machine path: absolute paths are
// machine paths, relative ones are relative to packets_package_dir.
func (s *sandbox) machinePath(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(s.hook.PackageDir, p)
	}
	return path.Clean(p)
}

// find returns the innermost root holding machine path p, or nil.
func (s *sandbox) find(p string) *dirRoot {
	for _, d := range s.roots {
		if under(p, []string{d.prefix}) {
			return d
		}
	}
	return nil
}

// locate resolves Lua path p to a root and a name in it, following symlinks
// as the kernel would (the final one only if followFinal) but only while
// they stay inside the hook's directories; an absolute symlink target is a
// machine path. Lexical ".." is resolved first: confinement does not depend
// on it, since the name is then opened through the root, which refuses any
// escape on its own.
func (s *sandbox) locate(p string, followFinal bool) (loc, error) {
	orig := p
	p = s.machinePath(p)
	for hops := 0; ; hops++ {
		d := s.find(p)
		if d == nil {
			return loc{}, &escapeError{path: orig, resolved: p}
		}
		rel := relTo(d.prefix, p)
		r, err := d.open()
		if err != nil || rel == "." {
			// A directory that cannot be opened fails the operation itself.
			return loc{dir: d, rel: rel, machine: p}, nil
		}
		next, ok := followOne(r, d.prefix, rel, followFinal)
		if !ok {
			return loc{dir: d, rel: rel, machine: p}, nil
		}
		if hops >= maxSymlinkHops {
			return loc{machine: p}, &fs.PathError{Op: "resolve", Path: orig, Err: syscall.ELOOP}
		}
		p = next
	}
}

// followOne finds the first symlink among rel's elements (the last one
// counted only if followFinal) and returns the machine path that results from
// replacing it with its target.
func followOne(r *os.Root, prefix, rel string, followFinal bool) (string, bool) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		if i == len(parts)-1 && !followFinal {
			break
		}
		name := strings.Join(parts[:i+1], "/")
		fi, err := r.Lstat(name)
		if err != nil {
			// Missing (or unreadable): the rest is taken as written, and the
			// operation itself reports the error.
			return "", false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := r.Readlink(name)
		if err != nil {
			return "", false
		}
		rest := strings.Join(parts[i+1:], "/")
		if !path.IsAbs(target) {
			target = path.Join(prefix, path.Dir(name), target)
		}
		return path.Join(target, rest), true
	}
	return "", false
}

// isEscape reports whether err is os.Root refusing a name that leaves it. Go
// does not export that error; its text is stable and a test pins it.
func isEscape(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err != nil && err.Error() == "path escapes from parent"
}

// protection is the set of machine paths owned by other packages: those of
// Hook.Protected, and those a sandbox child's owners and claims give to a
// package other than pkg.
type protection struct {
	sorted []string
	pkg    string
	owned  []claims
}

func newProtection(paths []string, pkg string, owned ...claims) protection {
	p := slices.Clone(paths)
	slices.Sort(p)
	return protection{sorted: slices.Compact(p), pkg: pkg, owned: owned}
}

// holds reports whether p is protected, or (withChildren) a directory that
// holds a protected path.
func (pr protection) holds(p string, withChildren bool) bool {
	for _, o := range pr.owned {
		if pr.ownedBy(o, p, withChildren) {
			return true
		}
	}
	if _, found := slices.BinarySearch(pr.sorted, p); found || !withChildren {
		return found
	}
	// Every path below p sorts right at or after p+"/", before anything else.
	prefix := strings.TrimSuffix(p, "/") + "/"
	i, _ := slices.BinarySearch(pr.sorted, prefix)
	return i < len(pr.sorted) && strings.HasPrefix(pr.sorted[i], prefix)
}

// ownedBy is holds for one map of owners. A directory takes a scan of
// them all: only a rename asks.
func (pr protection) ownedBy(o claims, p string, withChildren bool) bool {
	if owner, ok := o[p]; ok && owner != pr.pkg {
		return true
	}
	if !withChildren {
		return false
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for q, owner := range o {
		if owner != pr.pkg && strings.HasPrefix(q, prefix) {
			return true
		}
	}
	return false
}

package installed

import (
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// dirCache looks at many files of a root, in path order, through open
// directory descriptors: it keeps open the directory that held the last
// file used and that directory's open ancestors, so the thousands of files
// of a package cost one lstat (or unlink, readlink) each plus one open per
// directory, instead of a walk from the root per file.
//
// A directory is opened from the root with openat2 and RESOLVE_BENEATH,
// in one call however deep: symlinks inside the root are followed, as
// os.Root follows them, and one that leads out of it is refused (EXDEV).
// Where the kernel has no openat2 (before 5.6), the directory is opened
// through the os.Root instead, a component at a time.
type dirCache struct {
	root     *os.Root
	rootDir  *os.File  // the root's own descriptor, opened on first use
	chain    []openDir // chain[i+1] is below chain[i]; the root itself is not in it
	noOpenat bool      // openat2 is missing: open through root
}

type openDir struct {
	path string   // root-relative
	fd   int      // an O_PATH descriptor,
	f    *os.File // or this file's, in the fallback
}

// at returns a descriptor of the directory holding root-relative p, and
// p's base name.
func (c *dirCache) at(p string) (int, string, error) {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if dir == "." {
		c.truncate(0)
		fd, err := c.rootFD()
		return fd, base, err
	}
	keep := 0
	for keep < len(c.chain) && (dir == c.chain[keep].path || within(dir, c.chain[keep].path)) {
		keep++
	}
	c.truncate(keep)
	if keep > 0 && c.chain[keep-1].path == dir {
		return c.chain[keep-1].fd, base, nil
	}
	d, err := c.open(dir)
	if err != nil {
		return -1, "", err
	}
	c.chain = append(c.chain, d)
	return d.fd, base, nil
}

func (c *dirCache) rootFD() (int, error) {
	if c.rootDir == nil {
		f, err := c.root.Open(".")
		if err != nil {
			return -1, err
		}
		c.rootDir = f
	}
	return int(c.rootDir.Fd()), nil
}

// open opens the root-relative directory dir.
func (c *dirCache) open(dir string) (openDir, error) {
	if !c.noOpenat {
		rfd, err := c.rootFD()
		if err != nil {
			return openDir{}, err
		}
		how := &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		var fd int
		err = retry(func() (err error) { fd, err = unix.Openat2(rfd, dir, how); return err })
		if err == nil {
			return openDir{path: dir, fd: fd}, nil
		}
		if !errors.Is(err, unix.ENOSYS) {
			return openDir{}, &fs.PathError{Op: "open", Path: dir, Err: err}
		}
		c.noOpenat = true
	}
	f, err := c.root.Open(dir)
	if err != nil {
		return openDir{}, err
	}
	return openDir{path: dir, fd: int(f.Fd()), f: f}, nil
}

func (c *dirCache) truncate(n int) {
	for _, d := range c.chain[n:] {
		if d.f != nil {
			d.f.Close()
		} else {
			unix.Close(d.fd)
		}
	}
	c.chain = c.chain[:n]
}

// close closes every descriptor; c may be used again after it.
func (c *dirCache) close() {
	c.truncate(0)
	if c.rootDir != nil {
		c.rootDir.Close()
		c.rootDir = nil
	}
}

// lstat fills st for root-relative p, not following a symlink.
func (c *dirCache) lstat(p string, st *unix.Stat_t) error {
	dfd, base, err := c.at(p)
	if err != nil {
		return err
	}
	if err := retry(func() error { return unix.Fstatat(dfd, base, st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return nil
}

// readlink returns the target of the symlink at root-relative p.
func (c *dirCache) readlink(p string) (string, error) {
	dfd, base, err := c.at(p)
	if err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		if err := retry(func() (err error) { n, err = unix.Readlinkat(dfd, base, buf); return err }); err != nil {
			return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// hash returns the SHA-256 of the regular file at root-relative p.
func (c *dirCache) hash(p string) (packages.Digest, error) {
	dfd, base, err := c.at(p)
	if err != nil {
		return packages.Digest{}, err
	}
	var fd int
	if err := retry(func() (err error) {
		fd, err = unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		return err
	}); err != nil {
		return packages.Digest{}, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return hashReader(f)
}

// remove deletes root-relative p: a file or symlink, or an empty directory.
func (c *dirCache) remove(p string) error {
	dfd, base, err := c.at(p)
	if err != nil {
		return err
	}
	err = retry(func() error { return unix.Unlinkat(dfd, base, 0) })
	if err == unix.EISDIR || err == unix.EPERM {
		// EPERM: what unlink of a directory returns on Linux.
		if rerr := retry(func() error { return unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR) }); rerr != unix.ENOTDIR {
			err = rerr
		}
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	return nil
}

// fileFromStat describes the path p (a machine path) as st has it.
func fileFromStat(pkg packages.Name, p string, st *unix.Stat_t) File {
	m := fs.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	f := File{Package: pkg, Path: p, Mode: m, MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC()}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		f.Type = TypeDir
	case unix.S_IFLNK:
		f.Type = TypeSymlink
	default:
		f.Type, f.Size = TypeFile, st.Size
	}
	return f
}

// hashReader returns the SHA-256 of what r reads.
func hashReader(r io.Reader) (packages.Digest, error) {
	var d packages.Digest
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return d, err
	}
	h.Sum(d[:0])
	return d, nil
}

// retry calls fn again while it fails with EINTR (the runtime's preemption
// signals can interrupt a system call).
func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

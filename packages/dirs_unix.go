//go:build unix

package packages

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dirs works on the tree below one directory of a root (an archive's
// destination) through open directory descriptors: it keeps the chain of
// directories from that base down to the last one used, so that staging
// and publishing the thousands of files of a package opens each directory
// once, with one openat from its parent, instead of walking the path from
// the root for every file (os.Root resolves a path a component at a time,
// with an openat each). Below the base every call names a single path
// component relative to an open directory, with O_NOFOLLOW or
// AT_SYMLINK_NOFOLLOW, so nothing is reached through a symlink; the base
// itself is opened through the os.Root, which keeps it inside the root
// (its parents may be an administrator's symlinks). Raw descriptors also
// spare each file the fcntl and epoll calls an *os.File costs.
type dirs struct {
	root  *os.Root
	base  string    // root-relative
	chain []openDir // chain[0] is base, chain[i+1] a child of chain[i]
	umask uint32    // modes are set explicitly unless these bits are clear; 0o777: always
}

type openDir struct {
	path string
	fd   int
	f    *os.File // chain[0]: the descriptor belongs to this file
}

func newDirs(root *os.Root, base string) *dirs {
	return &dirs{root: root, base: base, umask: 0o777}
}

// open returns a descriptor of root-relative dir, base or below it.
func (d *dirs) open(dir string) (int, error) {
	if len(d.chain) == 0 {
		f, err := d.root.Open(d.base)
		if err != nil {
			return -1, err
		}
		d.chain = append(d.chain, openDir{path: d.base, fd: int(f.Fd()), f: f})
	}
	if dir == d.base {
		d.truncate(1)
		return d.chain[0].fd, nil
	}
	if !d.below(dir) {
		return -1, &fs.PathError{Op: "open", Path: dir, Err: errors.New("outside the destination " + d.base)}
	}
	// Keep the open ancestors of dir, then open the rest one by one.
	keep := 1
	for keep < len(d.chain) && within(dir, d.chain[keep].path) {
		keep++
	}
	d.truncate(keep)
	if p := d.chain[keep-1].path; p != dir {
		rel := dir
		if p != "." {
			rel = dir[len(p)+1:]
		}
		if err := d.descend(p, rel); err != nil {
			return -1, err
		}
	}
	return d.chain[len(d.chain)-1].fd, nil
}

// descend opens each directory of rel below the chain's last one, p.
func (d *dirs) descend(p, rel string) error {
	for c := range strings.SplitSeq(rel, "/") {
		p = path.Join(p, c)
		fd, err := openat(d.chain[len(d.chain)-1].fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		d.chain = append(d.chain, openDir{path: p, fd: fd})
	}
	return nil
}

// below reports whether root-relative p is strictly below the base.
func (d *dirs) below(p string) bool {
	if d.base == "." {
		return p != "." && p != ""
	}
	return strings.HasPrefix(p, d.base+"/")
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func (d *dirs) truncate(n int) {
	for _, o := range d.chain[n:] {
		if o.f != nil {
			o.f.Close()
		} else {
			unix.Close(o.fd)
		}
	}
	d.chain = d.chain[:n]
}

// close closes every descriptor; d may be used again after it.
func (d *dirs) close() { d.truncate(0) }

// kind returns the type bits of root-relative p, not following a symlink.
func (d *dirs) kind(p string) (fs.FileMode, error) {
	dfd, err := d.open(path.Dir(p))
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	for {
		err = unix.Fstatat(dfd, path.Base(p), &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	case unix.S_IFREG:
		return 0, nil
	case unix.S_IFLNK:
		return fs.ModeSymlink, nil
	}
	return fs.ModeIrregular, nil
}

// mkdir makes the directory p with exactly perm (whatever the umask).
func (d *dirs) mkdir(p string, perm fs.FileMode) error {
	dfd, err := d.open(path.Dir(p))
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(dfd, path.Base(p), uint32(perm.Perm())); err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	if uint32(perm.Perm())&d.umask == 0 {
		return nil
	}
	fd, err := d.open(p)
	if err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		return &fs.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

// create makes the new regular file p (O_EXCL: never an existing name, nor
// through a symlink) with mode, writes r's content to it through buf, and
// closes it; created says whether p exists, even if an error followed, and
// mtime is its modification time once written, which renames keep. The
// mode is set after the content (a write clears setuid bits), and only
// when the umask or special bits could have made it differ.
func (d *dirs) create(p string, mode fs.FileMode, r io.Reader, buf []byte) (created bool, mtime time.Time, err error) {
	dfd, err := d.open(path.Dir(p))
	if err != nil {
		return false, mtime, err
	}
	fd, err := openat(dfd, path.Base(p), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return false, mtime, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	err = writeAll(fd, p, r, buf)
	if m := unixMode(mode); err == nil && (m != uint32(mode.Perm()) || m&d.umask != 0) {
		if cerr := unix.Fchmod(fd, m); cerr != nil {
			err = &fs.PathError{Op: "chmod", Path: p, Err: cerr}
		}
	}
	if err == nil {
		var st unix.Stat_t
		if serr := unix.Fstat(fd, &st); serr != nil {
			err = &fs.PathError{Op: "stat", Path: p, Err: serr}
		}
		mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC()
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &fs.PathError{Op: "close", Path: p, Err: cerr}
	}
	return true, mtime, err
}

// writeAll copies r to fd through buf.
func writeAll(fd int, p string, r io.Reader, buf []byte) error {
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			m, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return &fs.PathError{Op: "write", Path: p, Err: err}
			}
			b = b[m:]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// chmodDir sets the mode of directory p.
func (d *dirs) chmodDir(p string, mode fs.FileMode) error {
	if !d.below(p) {
		return d.root.Chmod(p, mode)
	}
	fd, err := d.open(p)
	if err != nil {
		return err
	}
	if err := unix.Fchmod(fd, unixMode(mode)); err != nil {
		return &fs.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

// symlink makes the symlink p pointing at target.
func (d *dirs) symlink(target, p string) error {
	dfd, err := d.open(path.Dir(p))
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dfd, path.Base(p)); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: p, Err: err}
	}
	return nil
}

// rename renames old to new, both root-relative, in one directory below
// the base; otherwise through the root.
func (d *dirs) rename(old, new string) error {
	dir := path.Dir(old)
	if path.Dir(new) != dir || (dir != d.base && !d.below(dir)) || d.base == "" {
		return d.root.Rename(old, new)
	}
	dfd, err := d.open(dir)
	if err != nil {
		return err
	}
	if err := unix.Renameat(dfd, path.Base(old), dfd, path.Base(new)); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

func openat(dfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dfd, name, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// unixMode converts a file's permission and special bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// currentUmask reads the process's umask from /proc/self/status without
// changing it (setting it to read it would race with other goroutines
// creating files). Where it cannot be read, it returns 0o777: every mode
// is then set explicitly.
func currentUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			var u uint32
			for _, c := range strings.TrimSpace(v) {
				if c < '0' || c > '7' {
					return 0o777
				}
				u = u*8 + uint32(c-'0')
			}
			return u
		}
	}
	return 0o777
}

// renameNoReplace renames root-relative old to new, in one directory,
// failing with fs.ErrExist if new exists (a directory rename would replace
// an empty one). Where the filesystem cannot refuse atomically, new is
// checked first.
func renameNoReplace(root *os.Root, old, new string) error {
	dir := path.Dir(old)
	if path.Dir(new) != dir {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: errors.New("not in one directory")}
	}
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	for {
		err = unix.Renameat2(fd, path.Base(old), fd, path.Base(new), unix.RENAME_NOREPLACE)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EINVAL || err == unix.ENOSYS { // a filesystem without RENAME_NOREPLACE
		if _, serr := root.Lstat(new); serr == nil {
			err = unix.EEXIST
		} else {
			err = unix.Renameat(fd, path.Base(old), fd, path.Base(new))
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

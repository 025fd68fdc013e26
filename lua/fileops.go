package lua

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/packets-dev/packets/packages"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	glua "github.com/yuin/gopher-lua"
)

var errNotRegular = errors.New("not a regular file")

// maxPathBytes is Linux's PATH_MAX.
const maxPathBytes = 4096

// access is what an operation does with a path.
type access int

const (
	readAccess    access = iota // reads through it, following a final symlink
	writeAccess                 // writes through it (io.open), following a final symlink
	replaceAccess               // creates or replaces the entry itself (copy, symlink)
	moveAccess                  // removes or renames the entry itself
)

// resolve turns argument n into a location for op. It raises (and records a
// violation) for a path outside the hook's directories, a write outside the
// writable ones, removing or renaming a hook directory itself, and a write
// onto a path of another package. Other errors are ordinary and returned.
func (s *sandbox) resolve(L *glua.LState, op string, n int, acc access) (loc, error) {
	p := L.CheckString(n)
	if !validPath(p) {
		L.ArgError(n, "invalid path "+strconv.Quote(p))
	}
	l, err := s.locate(p, acc == readAccess || acc == writeAccess)
	var esc *escapeError
	if errors.As(err, &esc) {
		s.deny(L, "%s: %v", op, err)
	}
	if err != nil || acc == readAccess {
		return l, err
	}
	switch {
	case !l.dir.writable:
		s.deny(L, "%s: %s is not writable by hooks", op, l.machine)
	case l.rel == "." && acc == moveAccess:
		s.deny(L, "%s: %s is a hook directory itself", op, l.machine)
	case s.prot.holds(l.machine, false):
		s.deny(L, "%s: %s belongs to another package", op, l.machine)
	}
	s.touch(l)
	return l, nil
}

// validPath accepts the paths a hook may name: non-empty UTF-8 of at most
// PATH_MAX bytes without control or bidirectional-override characters, as in
// package archives. Paths then survive the JSON between the sandbox child
// and packets unchanged, and cannot disguise themselves in a log or a
// terminal.
func validPath(p string) bool {
	if p == "" || len(p) > maxPathBytes || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// rootOf returns l's root, or why its directory cannot be opened.
func rootOf(l loc) (*os.Root, error) {
	return l.dir.open()
}

// fail returns the Lua result of a failed operation: nil, "path: reason",
// errno, as Lua's io and os functions do; but a raise if os.Root refused a
// name that leaves its directory.
func (s *sandbox) fail(L *glua.LState, op, machine string, err error) int {
	if isEscape(err) {
		s.deny(L, "%s: %s leads outside the hook's directories", op, machine)
	}
	msg := err.Error()
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		msg = pe.Err.Error()
	case errors.As(err, &le):
		msg = le.Err.Error()
	}
	L.Push(glua.LNil)
	L.Push(glua.LString(machine + ": " + msg))
	var errno syscall.Errno
	if errors.As(err, &errno) {
		L.Push(glua.LNumber(errno))
		return 3
	}
	return 2
}

func (s *sandbox) osRemove(L *glua.LState) int {
	l, err := s.resolve(L, "os.remove", 1, moveAccess)
	if err == nil {
		var r *os.Root
		if r, err = rootOf(l); err == nil {
			err = r.Remove(l.rel)
		}
	}
	if err != nil {
		return s.fail(L, "os.remove", l.machine, err)
	}
	s.markRemoved(l)
	L.Push(glua.LTrue)
	return 1
}

func (s *sandbox) osRename(L *glua.LState) int {
	from, err := s.resolve(L, "os.rename", 1, moveAccess)
	if err != nil {
		return s.fail(L, "os.rename", from.machine, err)
	}
	to, err := s.resolve(L, "os.rename", 2, moveAccess)
	if err != nil {
		return s.fail(L, "os.rename", to.machine, err)
	}
	if s.prot.holds(from.machine, true) {
		s.deny(L, "os.rename: %s holds files of another package", from.machine)
	}
	// A relative symlink means something else once moved: check every one
	// that moves against its new place.
	s.checkMovedLinks(L, from, to)
	if d := common(from.dir, to.dir); d != nil {
		var r *os.Root
		if r, err = d.open(); err == nil {
			err = r.Rename(relTo(d.prefix, from.machine), relTo(d.prefix, to.machine))
		}
	} else {
		err = s.moveAcross(from, to)
	}
	if err != nil {
		return s.fail(L, "os.rename", from.machine, err)
	}
	s.markRemoved(from)
	s.markCreated(to)
	L.Push(glua.LTrue)
	return 1
}

// moveAcross renames between two unrelated hook directories, which rename(2)
// cannot do through two roots: a file is copied then removed, a symlink
// recreated then removed, and a directory refused with EXDEV, as across file
// systems.
func (s *sandbox) moveAcross(from, to loc) error {
	fr, err := rootOf(from)
	if err != nil {
		return err
	}
	fi, err := fr.Lstat(from.rel)
	switch {
	case err != nil:
		return err
	case fi.Mode().IsRegular():
		if _, err := s.copyFile(from, to); err != nil {
			return err
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		if err := s.replaceWithSymlink(from, to); err != nil {
			return err
		}
	default:
		return &os.LinkError{Op: "rename", Old: from.machine, New: to.machine, Err: syscall.EXDEV}
	}
	return fr.Remove(from.rel)
}

func (s *sandbox) replaceWithSymlink(from, to loc) error {
	fr, err := rootOf(from)
	if err != nil {
		return err
	}
	target, err := fr.Readlink(from.rel)
	if err != nil {
		return err
	}
	tr, err := rootOf(to)
	if err != nil {
		return err
	}
	tmp := tempName(to.rel)
	if err := tr.Symlink(target, tmp); err != nil {
		return err
	}
	if err := tr.Rename(tmp, to.rel); err != nil {
		_ = tr.Remove(tmp)
		return err
	}
	return nil
}

// checkMovedLinks raises if moving from to to would leave a symlink pointing
// outside the hook's directories: from itself, or one inside it.
func (s *sandbox) checkMovedLinks(L *glua.LState, from, to loc) {
	r, err := rootOf(from)
	if err != nil {
		return
	}
	fi, err := r.Lstat(from.rel)
	switch {
	case err != nil:
	case fi.Mode()&fs.ModeSymlink != 0:
		if target, err := r.Readlink(from.rel); err == nil {
			s.checkLinkTarget(L, "os.rename", to.machine, target)
		}
	case fi.IsDir():
		_ = fs.WalkDir(r.FS(), from.rel, func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			if target, err := r.Readlink(name); err == nil {
				s.checkLinkTarget(L, "os.rename", to.machine+strings.TrimPrefix(name, from.rel), target)
			}
			return nil
		})
	}
}

func (s *sandbox) osCopy(L *glua.LState) int {
	src, err := s.resolve(L, "os.copy", 1, readAccess)
	if err != nil {
		return s.fail(L, "os.copy", src.machine, err)
	}
	dst, err := s.resolve(L, "os.copy", 2, replaceAccess)
	if err != nil {
		return s.fail(L, "os.copy", dst.machine, err)
	}
	if where, err := s.copyFile(src, dst); err != nil {
		return s.fail(L, "os.copy", where, err)
	}
	s.markCreated(dst)
	L.Push(glua.LTrue)
	return 1
}

// copyFile copies regular file src over dst, keeping src's mode: through a
// temporary name beside dst, renamed over it, so that dst is never half
// written and a symlink at dst is replaced rather than written through. It
// returns the machine path the error is about.
func (s *sandbox) copyFile(src, dst loc) (string, error) {
	sr, err := rootOf(src)
	if err != nil {
		return src.machine, err
	}
	in, err := sr.OpenFile(src.rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return src.machine, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return src.machine, err
	}
	if !fi.Mode().IsRegular() {
		return src.machine, errNotRegular
	}
	dr, err := rootOf(dst)
	if err != nil {
		return dst.machine, err
	}
	tmp := tempName(dst.rel)
	// O_NONBLOCK does nothing to a new regular file, but opened with it
	// the descriptor is not first made non-blocking and then blocking
	// again after the poller refuses it (four fcntl calls).
	out, err := dr.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return dst.machine, err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		// Chmod after creation: the umask must not change the mode.
		err = out.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dr.Rename(tmp, dst.rel)
	}
	if err != nil {
		_ = dr.Remove(tmp)
		return dst.machine, err
	}
	return dst.machine, nil
}

// tempName is a fresh name beside rel, starting with
// packages.HookTempPrefix, which recovery sweeps after a crash killed a hook.
func tempName(rel string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(rel), packages.HookTempPrefix+hex.EncodeToString(b[:]))
}

func (s *sandbox) osSymlink(L *glua.LState) int {
	target := L.CheckString(1)
	if !validPath(target) {
		L.ArgError(1, "invalid link target "+strconv.Quote(target))
	}
	link, err := s.resolve(L, "os.symlink", 2, replaceAccess)
	if err == nil {
		s.checkLinkTarget(L, "os.symlink", link.machine, target)
		var r *os.Root
		if r, err = rootOf(link); err == nil {
			err = r.Symlink(target, link.rel)
		}
	}
	if err != nil {
		return s.fail(L, "os.symlink", link.machine, err)
	}
	s.markCreated(link)
	L.Push(glua.LTrue)
	return 1
}

// checkLinkTarget raises unless a symlink at machine path link with this
// target would point inside the hook's directories, following any symlinks
// the target already passes through.
func (s *sandbox) checkLinkTarget(L *glua.LState, op, link, target string) {
	t := target
	if !path.IsAbs(t) {
		t = path.Join(path.Dir(link), t)
	}
	var esc *escapeError
	if _, err := s.locate(t, true); errors.As(err, &esc) {
		if esc.resolved != target {
			s.deny(L, "%s: link target %s resolves to %s, outside the hook's directories", op, target, esc.resolved)
		}
		s.deny(L, "%s: link target %s is outside the hook's directories", op, target)
	}
}

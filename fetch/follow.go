package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

// A download in progress is announced by its part file: the Fetcher holds
// an open file description lock (fcntl F_OFD_SETLK, a write lock over the
// whole file) on it while it writes, and the kernel drops the lock with
// the last descriptor, so a crashed download announces nothing. The LAN
// daemon, another process, tests for the lock without taking it
// (F_OFD_GETLK), and serves the blob as it grows (Follow).

// lockPart announces that f is being written.
func lockPart(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// beingWritten reports whether someone holds lockPart's lock on the file f
// opens (another open file description; f's own never conflicts).
func beingWritten(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

// Progress is what InProgress tells of a download.
type Progress struct {
	Held     int64     // bytes written so far
	Modified time.Time // when the last of them was written (or the part made)
}

// InProgress reports whether blob d is being downloaded into the cache
// right now, and how far it got.
func (c *Cache) InProgress(d packages.Digest) (Progress, bool) {
	f, err := os.Open(c.partPath(d))
	if err != nil {
		return Progress{}, false
	}
	defer f.Close()
	if w, err := beingWritten(f); err != nil || !w {
		return Progress{}, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return Progress{}, false
	}
	return Progress{Held: st.Size(), Modified: st.ModTime()}, true
}

// Follower reads a blob while it is being downloaded into the cache, from
// its first byte: what is there, then what arrives, until the download puts
// the blob in place (io.EOF) or stops without doing so (an error). It
// never vouches for the bytes: its reader checks them against the digest,
// as it would any peer's.
type Follower struct {
	ctx   context.Context
	c     *Cache
	d     packages.Digest
	f     *os.File
	off   int64
	last  time.Time     // when bytes last arrived
	Poll  time.Duration // how often to look for more at the end; 0: 2 ms
	Stall time.Duration // give up after this long without a byte; 0: 5 s
}

// ErrAbandoned says that a download being followed stopped before the
// blob was complete: the writer went away, or started the blob again.
var ErrAbandoned = errors.New("the download being followed was abandoned")

// Follow opens blob d's download for reading as it grows. A blob that is
// not being downloaded (absent, complete already, or a part left by an
// earlier run) is an error matching ErrNotFound.
func (c *Cache) Follow(ctx context.Context, d packages.Digest) (*Follower, error) {
	f, err := os.Open(c.partPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s is not being downloaded: %w", d.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if w, err := beingWritten(f); err != nil || !w {
		f.Close()
		return nil, errors.Join(fmt.Errorf("blob %s is not being downloaded: %w", d.Short(), ErrNotFound), err)
	}
	return &Follower{ctx: ctx, c: c, d: d, f: f, last: time.Now()}, nil
}

// Read reads what the download has written past what was read, waiting for
// more at its end.
func (fl *Follower) Read(b []byte) (int, error) {
	poll, stall := fl.Poll, fl.Stall
	if poll <= 0 {
		poll = 2 * time.Millisecond
	}
	if stall <= 0 {
		stall = 5 * time.Second
	}
	for {
		n, err := fl.f.Read(b)
		if n > 0 {
			fl.off += int64(n)
			fl.last = time.Now()
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		done, err := fl.finished()
		switch {
		case err != nil:
			return 0, err
		case done:
			// Put in place after its last write: what is left is there.
			n, err := fl.f.Read(b)
			fl.off += int64(n)
			if n > 0 {
				return n, nil
			}
			return 0, err
		case time.Since(fl.last) > stall:
			return 0, &StallError{After: stall}
		}
		select {
		case <-fl.ctx.Done():
			return 0, fl.ctx.Err()
		case <-time.After(poll):
		}
	}
}

// finished reports whether the download put the blob in place, or why it
// will not. The writer renames before it lets go of its lock: unlocked and
// not renamed means abandoned.
func (fl *Follower) finished() (bool, error) {
	st, err := fl.f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() < fl.off {
		return false, ErrAbandoned // emptied to start again: what was read is not a prefix
	}
	placed := func() bool {
		fi, err := os.Stat(fl.c.Path(fl.d))
		return err == nil && os.SameFile(fi, st)
	}
	if placed() {
		return true, nil
	}
	if w, err := beingWritten(fl.f); err != nil || w {
		return false, err
	}
	if placed() { // put in place between the two looks
		return true, nil
	}
	return false, ErrAbandoned
}

// Close releases the file.
func (fl *Follower) Close() error { return fl.f.Close() }

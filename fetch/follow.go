package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// beingWritten reports whether someone holds lockPart's write lock on the
// file f opens (another open file description; f's own never conflicts).
// A read lock, which anyone who can read the file may take, does not count.
func beingWritten(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type == unix.F_WRLCK, nil
}

// openRegular opens path for reading if it is a regular file: never
// through a symlink in its last component, and never blocking on a FIFO.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errors.Join(fmt.Errorf("%s: not a regular file", path), err)
	}
	return f, nil
}

// claimsName is the file in the cache directory that lists the blobs a
// running FetchAll is about to download, one "<hex digest> <intent>" a
// line: locked as a part file is, for as long as that FetchAll runs. A
// daemon counts a claimed blob as in progress before its download starts,
// so that hosts that apply at once see each other from their first query.
const claimsName = ".claims"

// Intent says how a host is going to get a blob it claimed.
type Intent byte

// The intents of a claimed blob. A claim starts undecided; once the
// Preparer sources have looked, it says whether this host takes the blob
// from a peer or fetches it itself from a later source (a mirror).
const (
	IntentUndecided Intent = '-'
	IntentMirror    Intent = 'm'
	IntentPeer      Intent = 'p'
)

// A claim is a locked claims file; decide rewrites it, release removes it.
type claim struct {
	dir     string
	f       *os.File
	digests []packages.Digest
}

// claim writes and locks the claims file for digests, all undecided. It is
// only an announcement: an error leaves nothing behind and is returned for
// the caller to log.
func (c *Cache) claim(digests []packages.Digest) (*claim, error) {
	stale, _ := filepath.Glob(filepath.Join(c.Dir, claimsName+".tmp-*"))
	for _, p := range stale {
		os.Remove(p) // a crash's leftovers: FetchAll runs under the packets lock
	}
	cl := &claim{dir: c.Dir, digests: digests}
	return cl, cl.write(nil)
}

// decide rewrites the claims with each blob's intent (IntentMirror for
// those in mirror, IntentPeer for the rest).
func (cl *claim) decide(mirror map[packages.Digest]bool) error {
	return cl.write(mirror)
}

// write replaces the claims file: a new locked file renamed over the old
// one, which is then let go. mirror nil leaves every blob undecided.
func (cl *claim) write(mirror map[packages.Digest]bool) error {
	b := make([]byte, 0, len(cl.digests)*(2*len(packages.Digest{})+3))
	for _, d := range cl.digests {
		in := IntentUndecided
		if mirror != nil {
			in = IntentPeer
			if mirror[d] {
				in = IntentMirror
			}
		}
		b = append(b, d.String()...)
		b = append(b, ' ', byte(in), '\n')
	}
	f, err := os.CreateTemp(cl.dir, claimsName+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = lockPart(f)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(cl.dir, claimsName)) // the lock goes with the file
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if cl.f != nil {
		cl.f.Close()
	}
	cl.f = f
	return nil
}

// release removes the claims file and lets go of its lock.
func (cl *claim) release() {
	if cl.f == nil {
		return
	}
	os.Remove(filepath.Join(cl.dir, claimsName))
	cl.f.Close()
	cl.f = nil
}

// claims is what a daemon knows of the claims file: what it read, for the
// file it read it from, while that file stays the same.
type claims struct {
	mu      sync.Mutex
	f       *os.File
	st      os.FileInfo
	intents map[packages.Digest]Intent
}

// claimed returns the intent of a running FetchAll's claim on d. Each call
// looks at the file (one stat) and tests its lock (one fcntl); it reads the
// file again only when it is another one.
func (c *Cache) claimed(d packages.Digest) (Intent, bool) {
	cl := &c.claims
	cl.mu.Lock()
	defer cl.mu.Unlock()
	// Twice: a decide renames a new file in between a look and its lock
	// test, and the old file is let go an instant later.
	for range 2 {
		if in, ok, again := cl.lookup(filepath.Join(c.Dir, claimsName), d); !again {
			return in, ok
		}
	}
	return 0, false
}

// lookup is one look at the claims file at path for d; again says that the
// file read is not locked although it is still there, when a second look
// may find its replacement.
func (cl *claims) lookup(path string, d packages.Digest) (in Intent, ok, again bool) {
	st, err := os.Stat(path)
	if err != nil {
		cl.drop()
		return 0, false, false
	}
	if cl.f == nil || !os.SameFile(st, cl.st) || st.Size() != cl.st.Size() {
		cl.drop()
		if cl.f, err = openRegular(path); err != nil {
			return 0, false, false
		}
		b, err := io.ReadAll(io.LimitReader(cl.f, maxClaims))
		if err != nil {
			cl.drop()
			return 0, false, false
		}
		cl.st, cl.intents = st, map[packages.Digest]Intent{}
		for line := range strings.Lines(string(b)) {
			hex, in, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			d, err := packages.ParseDigest(hex)
			if ok && err == nil && len(in) == 1 {
				switch i := Intent(in[0]); i {
				case IntentUndecided, IntentMirror, IntentPeer:
					cl.intents[d] = i
				}
			}
		}
	}
	if w, err := beingWritten(cl.f); err != nil || !w {
		// Left by a run that ended (kept, so that its lock is all there
		// is to test next time), or replaced just now: look again.
		now, serr := os.Stat(path)
		return 0, false, err == nil && serr == nil && !os.SameFile(now, cl.st)
	}
	in, ok = cl.intents[d]
	return in, ok, false
}

// maxClaims bounds what a daemon reads of a claims file: 100,000 blobs.
const maxClaims = 100_000 * 67

func (cl *claims) drop() {
	if cl.f != nil {
		cl.f.Close()
	}
	cl.f, cl.st, cl.intents = nil, nil, nil
}

// Progress is what InProgress tells of a download.
type Progress struct {
	Held     int64     // bytes written so far
	Modified time.Time // when the last of them was written (or the part made)
	Intent   Intent    // how the host gets it, as claimed; IntentUndecided if unclaimed
}

// InProgress reports whether blob d is being downloaded into the cache
// right now, or is claimed by a FetchAll that will download it, and how
// far it got (a claimed blob not started yet holds nothing).
func (c *Cache) InProgress(d packages.Digest) (Progress, bool) {
	in, claimed := c.claimed(d)
	if !claimed {
		in = IntentUndecided
	}
	if p, ok := c.downloading(d); ok {
		p.Intent = in
		return p, true
	}
	if claimed {
		return Progress{Intent: in}, true
	}
	return Progress{}, false
}

// downloading reports whether blob d's part file is being written.
func (c *Cache) downloading(d packages.Digest) (Progress, bool) {
	f, err := openRegular(c.partPath(d))
	if err != nil {
		return Progress{}, false
	}
	defer f.Close()
	if w, err := beingWritten(f); err != nil || !w {
		return Progress{}, false
	}
	st, err := f.Stat()
	if err != nil {
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

// Follow opens blob d's download for reading as it grows. A blob claimed
// but not started yet is waited for, up to StartWait. A blob that is not
// being downloaded (absent, complete already, or a part left by an earlier
// run) is an error matching ErrNotFound: one complete by now is read from
// the cache as usual.
func (c *Cache) Follow(ctx context.Context, d packages.Digest) (*Follower, error) {
	notFound := fmt.Errorf("blob %s is not being downloaded: %w", d.Short(), ErrNotFound)
	deadline := time.Now().Add(StartWait)
	for {
		f, err := openRegular(c.partPath(d))
		if err == nil {
			w, err := beingWritten(f)
			if err == nil && w {
				return &Follower{ctx: ctx, c: c, d: d, f: f, last: time.Now()}, nil
			}
			f.Close()
			if err != nil {
				return nil, errors.Join(notFound, err)
			}
			// Not locked: left by an earlier run, or made an instant ago
			// and not locked yet (a claimed blob is waited for).
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if _, err := os.Lstat(c.Path(d)); err == nil {
			return nil, notFound // put in place meanwhile
		}
		if _, ok := c.claimed(d); !ok || time.Now().After(deadline) {
			return nil, notFound
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// StartWait bounds how long Follow waits for a claimed blob's download to
// start: the claimant downloads a few blobs at a time, in the order hosts
// applying the same plan ask for them. It is under DefaultStall, so that a
// Fetcher's own stall watchdog lets a follower wait that long.
const StartWait = 20 * time.Second

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

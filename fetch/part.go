package fetch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/packets-dev/packets/packages"
)

// part is a blob being downloaded into <dir>/<sha256>.part. Every byte
// written to it goes through the hash, so that the digest is known the moment
// the last byte arrives; a part left by an earlier run is hashed when opened.
// It is the io.Writer that sources write to, and it refuses to grow past the
// promised size, whatever a source sends.
type part struct {
	path string
	want Want
	f    *os.File
	h    hash.Hash
	n    int64 // bytes in the file, all of them hashed

	// owner is the source that wrote every byte held, "" when nobody or
	// several did (or an earlier run). A digest mismatch is blamed on a
	// source only when it is the owner.
	owner string

	// onWrite is called after each write (progress, stall watchdog); set
	// for the duration of one attempt.
	onWrite func(n int64)
}

// openPart opens or creates the part file of w and hashes what it holds.
func openPart(path string, w Want) (*part, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, &localError{err}
	}
	// Announce the download to the LAN daemon (Cache.InProgress); the lock
	// goes with the file. It is only an announcement: writers are kept
	// apart by the packets lock, so a failure to take it changes nothing.
	_ = lockPart(f)
	p := &part{path: path, want: w, f: f, h: sha256.New()}
	st, err := f.Stat()
	if err == nil && st.Size() > w.Size {
		err = p.reset() // cannot be a prefix of the blob
	} else if err == nil && st.Size() > 0 { // resume: hash what is held
		p.n, err = io.Copy(p.h, f)
	}
	if err != nil {
		f.Close()
		return nil, &localError{fmt.Errorf("resume %s: %w", path, err)}
	}
	return p, nil
}

// Write appends b to the part. Bytes past the promised size are refused with
// a *packages.SizeMismatchError, so that an endless body costs nothing.
func (p *part) Write(b []byte) (int, error) {
	if int64(len(b)) > p.want.Size-p.n {
		return 0, &packages.SizeMismatchError{What: p.want.String(), Want: p.want.Size, Got: -1}
	}
	n, err := p.f.Write(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	if p.onWrite != nil {
		p.onWrite(p.n)
	}
	if err != nil {
		return n, &localError{err} // an *os.PathError: it names the file already
	}
	return n, nil
}

// reset empties the part: the bytes held are wrong or unusable.
//
// It starts a new file rather than truncating this one, so that a daemon
// following the download (Cache.Follow) sees the old one let go without
// being put in place, and stops, instead of reading on into the new bytes.
func (p *part) reset() error {
	p.h.Reset()
	p.n = 0
	p.owner = ""
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &localError{err}
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return &localError{err}
	}
	_ = lockPart(f)
	p.f.Close()
	p.f = f
	return nil
}

// check compares what the part holds with the signed index.
func (p *part) check() error {
	if p.n != p.want.Size {
		return &packages.SizeMismatchError{What: p.want.String(), Want: p.want.Size, Got: p.n}
	}
	var got packages.Digest
	p.h.Sum(got[:0])
	if got != p.want.Digest {
		return &packages.DigestMismatchError{What: p.want.String(), Want: p.want.Digest, Got: got}
	}
	return nil
}

// commit makes a verified part the cached blob: rename. The final name
// existing means the blob was complete and verified; FetchAll makes the
// batch durable with one syncfs at its end, rather than an fsync per blob
// (which cost 200 ms of a 200-package apply on ext4). A blob torn by a
// power cut before that is refused by the hash check before any use.
//
// The rename comes before the close, so that a follower that sees the part
// unlocked (Follower) knows it was either put in place or abandoned.
func (p *part) commit(final string) error {
	err := os.Rename(p.path, final)
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	if err != nil {
		return &localError{fmt.Errorf("store %s: %w", final, err)}
	}
	return nil
}

// close releases the file of a part that was not committed. A part with
// bytes is kept for the next run to resume; an empty one is removed.
func (p *part) close() error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	if p.n == 0 {
		if rerr := os.Remove(p.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

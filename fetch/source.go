package fetch

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/packets-dev/packets/packages"
)

// Want is one blob to get: its digest and size from the signed index, and its
// path on a mirror.
type Want struct {
	Digest packages.Digest
	Size   int64  // bytes, from the signed index; never more is read
	Path   string // relative to a mirror's base: "packages/htop-3.3.0.tar.zst"
	Name   string // for messages and progress: "htop@3.3.0"; may be empty
}

// String names the blob for messages: its Name, else its Path, else its
// digest.
func (w Want) String() string {
	switch {
	case w.Name != "":
		return w.Name
	case w.Path != "":
		return w.Path
	}
	return w.Digest.Short()
}

// WantFor returns the Want for an archive offered by the signed index.
func WantFor(a packages.Available) Want {
	return Want{Digest: a.Digest, Size: a.Size, Path: a.Filename, Name: a.Ref().String()}
}

// validate refuses a Want no source could satisfy safely.
func (w Want) validate() error {
	switch {
	case w.Digest.IsZero():
		return fmt.Errorf("%s: no digest", w)
	case w.Size <= 0:
		return fmt.Errorf("%s: size %d is not positive", w, w.Size)
	case w.Path != "" && !fs.ValidPath(w.Path):
		return fmt.Errorf("%s: mirror path %q is not a clean relative path", w, w.Path)
	}
	return nil
}

// Source gets a blob's bytes. Fetch writes the blob's bytes from offset on to
// dst, at most w.Size-offset of them, and returns how many it wrote. It
// returns ErrNotFound (wrapped) when it does not have the blob, so that the
// Fetcher falls through to the next source, and ErrRestart (wrapped) when it
// cannot start at offset. A source need not verify anything: every byte goes
// through the Fetcher's hash, and the cache checks size and digest before a
// blob becomes visible. A source must stop writing to dst when Fetch returns
// and must honour ctx: the Fetcher cancels it on a stall or a timeout.
// Fetch may be called concurrently for different blobs.
type Source interface {
	Fetch(ctx context.Context, w Want, dst io.Writer, offset int64) (n int64, err error)
	String() string // "mirror https://…", "peer 10.0.0.7:9123": for messages and Result.Source
}

// A Preparer is a Source that gets ready for a batch of blobs before it is
// asked for each: a LAN source asks its neighbours about all of them in one
// window instead of one window per blob. FetchAll calls Prepare once, with
// the blobs it is about to download, after it has claimed them in the
// cache (Cache.InProgress). Prepare returns the blobs it found nobody to
// deliver: those this host fetches itself, from a later source, and says
// so in its claims (IntentMirror), so that its neighbours may take them
// from it.
type Preparer interface {
	Prepare(ctx context.Context, wants []Want) (unfound []packages.Digest)
}

// Result says where a blob came from.
type Result struct {
	Want
	Source string // Source.String() of the source that completed it, "cache" if it was already there
	Path   string // the verified blob in the cache
}

// SourceCache is Result.Source for a blob that was already in the cache.
const SourceCache = "cache"

// Observer is told about each blob's progress, to draw progress bars; the
// library never prints. Its methods are called from several goroutines at
// once and must be quick.
type Observer interface {
	// Start is called each time a source begins to deliver w (again after a
	// failover), and once with SourceCache for a blob already cached.
	Start(w Want, source string)
	// Progress reports the bytes of w held so far, out of w.Size. It can go
	// back to 0 when a download restarts.
	Progress(w Want, n int64)
	// Done is called once per blob: err is nil when the blob is in the cache,
	// verified, and source is where it came from.
	Done(w Want, source string, err error)
}

// nopObserver is the Observer used when none is set.
type nopObserver struct{}

func (nopObserver) Start(Want, string)       {}
func (nopObserver) Progress(Want, int64)     {}
func (nopObserver) Done(Want, string, error) {}

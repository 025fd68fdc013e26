package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/packets-dev/packets/packages"
)

// DefaultParallel is how many blobs a Fetcher downloads at once by default.
const DefaultParallel = 4

// Fetcher downloads blobs into a Cache, trying Sources in order (for
// example LAN peers, then each mirror). The zero values of Parallel, Retry,
// Observer and Logger are sensible defaults.
type Fetcher struct {
	Cache    *Cache
	Sources  []Source    // in order of preference
	Parallel int         // blobs downloaded at once; 0 means DefaultParallel
	Retry    RetryPolicy // per source and blob
	// Offline uses the cache only: a blob that is not there is an
	// *OfflineError naming every missing blob, and nothing is downloaded.
	Offline bool
	// VerifyCached re-hashes blobs already in the cache before trusting
	// them; otherwise only their size is checked. packets sets it, so that
	// every blob an apply installs was hashed by that apply: downloaded
	// ones as they arrived, cached ones here. A bad cached blob is removed
	// and fetched again.
	VerifyCached bool
	// Ready, when not nil, hears of each blob as soon as it is in the cache
	// and verified, so that a caller can start on it while the others
	// download. It is called from the downloading goroutines, at most once
	// per digest. The blobs are durable only when FetchAll returns.
	Ready    func(Result)
	Observer Observer     // nil: no progress reports
	Logger   *slog.Logger // nil discards
}

// FetchAll makes every wanted blob present and verified in the cache:
// cached ones are checked and skipped, the others downloaded concurrently.
// It returns one Result per Want, in order, or the first error (the other
// downloads are cancelled; their part files stay for the next run to
// resume). Wants with the same digest are fetched once.
func (f *Fetcher) FetchAll(ctx context.Context, wants []Want) ([]Result, error) {
	start := time.Now()
	uniq, index, err := dedupe(wants)
	if err != nil {
		return nil, err
	}
	if f.Cache == nil {
		return nil, errors.New("fetch: no cache configured")
	}
	if err := os.MkdirAll(f.Cache.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	r := &run{f: f, obs: f.Observer, log: f.Logger, down: make([]atomic.Bool, len(f.Sources))}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var got []Result
	if f.Offline {
		got, err = r.offline(uniq)
	} else {
		got, err = r.all(ctx, uniq)
	}
	if err != nil {
		return nil, err
	}
	if !f.Offline {
		// Every blob downloaded, durable at once (see part.commit).
		if err := f.Cache.Sync(); err != nil {
			return nil, err
		}
	}
	out := make([]Result, len(wants))
	var fetched int
	var bytes int64
	for i, j := range index {
		out[i] = got[j]
		out[i].Want = wants[i]
	}
	for _, res := range got {
		if res.Source != SourceCache {
			fetched++
			bytes += res.Size
		}
	}
	r.log.Info("fetched", "blobs", len(uniq), "downloaded", fetched, "bytes", bytes, "dur", time.Since(start))
	return out, nil
}

// dedupe validates wants and drops repeated digests. index maps each want
// to its entry in uniq.
func dedupe(wants []Want) (uniq []Want, index []int, err error) {
	seen := make(map[packages.Digest]int, len(wants))
	index = make([]int, len(wants))
	for i, w := range wants {
		if err := w.validate(); err != nil {
			return nil, nil, err
		}
		j, ok := seen[w.Digest]
		if !ok {
			j = len(uniq)
			seen[w.Digest] = j
			uniq = append(uniq, w)
		} else if uniq[j].Size != w.Size {
			return nil, nil, fmt.Errorf("%s and %s: same digest %s, sizes %d and %d",
				uniq[j], w, w.Digest.Short(), uniq[j].Size, w.Size)
		}
		index[i] = j
	}
	return uniq, index, nil
}

// run is one FetchAll: what it shares between its downloads.
type run struct {
	f   *Fetcher
	obs Observer
	log *slog.Logger
	// down marks sources that failed a blob on transient errors without
	// sending a byte: later blobs of this run skip them instead of paying
	// the retries again.
	down []atomic.Bool
}

// offline checks that every blob is in the cache, naming all that are not.
func (r *run) offline(wants []Want) ([]Result, error) {
	out := make([]Result, len(wants))
	var missing []Want
	for i, w := range wants {
		ok, err := r.cached(w)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, w)
			continue
		}
		out[i] = r.fromCache(w)
	}
	if len(missing) > 0 {
		return nil, &OfflineError{Missing: missing}
	}
	for _, res := range out {
		r.ready(res)
	}
	return out, nil
}

// ready tells the Fetcher's Ready, if any, that res is in the cache.
func (r *run) ready(res Result) {
	if r.f.Ready != nil {
		r.f.Ready(res)
	}
}

// all fetches wants concurrently, Parallel at a time. When a source is a
// Preparer, the blobs to download are claimed in the cache first, for as
// long as the run lasts, and it is told about them.
func (r *run) all(ctx context.Context, wants []Want) ([]Result, error) {
	if release := r.prepare(ctx, wants); release != nil {
		defer release()
	}
	out := make([]Result, len(wants))
	g, gctx := errgroup.WithContext(ctx)
	limit := r.f.Parallel
	if limit <= 0 {
		limit = DefaultParallel
	}
	g.SetLimit(limit)
	for i, w := range wants {
		g.Go(func() error {
			res, err := r.one(gctx, w)
			out[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// prepare claims the blobs of wants not in the cache and hands them to
// every Preparer source. It returns what releases the claim, or nil.
func (r *run) prepare(ctx context.Context, wants []Want) (release func()) {
	var preparers []Preparer
	for _, src := range r.f.Sources {
		if p, ok := src.(Preparer); ok {
			preparers = append(preparers, p)
		}
	}
	if len(preparers) == 0 {
		return nil
	}
	var missing []Want
	var digests []packages.Digest
	for _, w := range wants {
		if !r.f.Cache.Has(w.Digest, w.Size) {
			missing = append(missing, w)
			digests = append(digests, w.Digest)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cl, err := r.f.Cache.claim(digests)
	if err != nil {
		r.log.Debug("blobs not claimed in the cache", "err", err)
	}
	// A blob no Preparer can deliver is fetched from a later source.
	unfoundBy := make(map[packages.Digest]int, len(digests))
	for _, p := range preparers {
		for _, d := range p.Prepare(ctx, missing) {
			unfoundBy[d]++
		}
	}
	mirror := make(map[packages.Digest]bool, len(digests))
	for _, d := range digests {
		mirror[d] = unfoundBy[d] == len(preparers)
	}
	if err == nil {
		if err := cl.decide(mirror); err != nil {
			r.log.Debug("claims not updated", "err", err)
		}
	}
	return cl.release
}

// cached reports whether w is in the cache, usable as it is.
func (r *run) cached(w Want) (bool, error) {
	c := r.f.Cache
	if !c.Has(w.Digest, w.Size) {
		return false, nil
	}
	if !r.f.VerifyCached {
		return true, nil
	}
	err := c.Verify(w.Digest)
	var bad *packages.DigestMismatchError
	switch {
	case errors.As(err, &bad): // removed by Verify: fetch it again
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%s: %w", w, err)
	}
	return true, nil
}

func (r *run) fromCache(w Want) Result {
	r.obs.Start(w, SourceCache)
	r.obs.Progress(w, w.Size)
	r.obs.Done(w, SourceCache, nil)
	return Result{Want: w, Source: SourceCache, Path: r.f.Cache.Path(w.Digest)}
}

// one makes blob w present in the cache.
func (r *run) one(ctx context.Context, w Want) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err // another blob failed: do not start
	}
	ok, err := r.cached(w)
	if err != nil {
		return Result{}, err
	}
	if ok {
		res := r.fromCache(w)
		r.ready(res)
		return res, nil
	}
	start := time.Now()
	res, err := r.download(ctx, w)
	r.obs.Done(w, res.Source, err)
	if err == nil {
		r.log.Debug("fetched", "pkg", w.String(), "digest", w.Digest.Short(), "source", res.Source, "dur", time.Since(start))
		r.ready(res)
	}
	return res, err
}

package reconcile

import (
	"context"
	"fmt"
	"sync"

	"github.com/packets-dev/packets/packages"
)

// fetching is a plan's fetch running beside staging: the change of each
// archive waits for that archive alone (installed.Change.Wait), so that
// packages stage while the others download.
type fetching struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	ready  map[packages.Digest]chan struct{} // closed when the archive is in the cache
	from   map[packages.Digest]string        // where each ready archive came from
	done   chan struct{}                     // closed when Fetch returned
	// Fetch's results, set before done is closed.
	sources map[packages.Digest]string
	err     error
}

// startFetch starts fetching builds in the background.
func startFetch(ctx context.Context, f Fetcher, builds []*packages.Available) *fetching {
	ctx, cancel := context.WithCancel(ctx)
	fg := &fetching{
		cancel: cancel,
		ready:  make(map[packages.Digest]chan struct{}, len(builds)),
		from:   make(map[packages.Digest]string, len(builds)),
		done:   make(chan struct{}),
	}
	for _, b := range builds {
		fg.ready[b.Digest] = make(chan struct{})
	}
	go func() {
		defer close(fg.done)
		fg.sources, fg.err = f.Fetch(ctx, builds, fg.arrived)
	}()
	return fg
}

// arrived is Fetch's ready callback.
func (fg *fetching) arrived(d packages.Digest, source string) {
	fg.mu.Lock()
	defer fg.mu.Unlock()
	ch, ok := fg.ready[d]
	if _, seen := fg.from[d]; !ok || seen {
		return
	}
	fg.from[d] = source
	close(ch)
}

// wait blocks until archive d is in the cache and returns where it came
// from, or returns the fetch's error.
func (fg *fetching) wait(ctx context.Context, d packages.Digest) (string, error) {
	ch, ok := fg.ready[d]
	if !ok {
		return "", fmt.Errorf("archive %s is not in the plan's fetch", d.Short())
	}
	select {
	case <-ch:
	case <-fg.done:
		select {
		case <-ch: // it arrived just before the end
		default:
			if fg.err != nil {
				return "", fg.err
			}
			return "", fmt.Errorf("archive %s: the fetch ended without it", d.Short())
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
	fg.mu.Lock()
	defer fg.mu.Unlock()
	return fg.from[d], nil
}

// arrivedYet reports whether wait for archive d would return at once:
// it is in the cache, or the fetch is over.
func (fg *fetching) arrivedYet(d packages.Digest) bool {
	ch, ok := fg.ready[d]
	if !ok {
		return true // wait fails at once
	}
	select {
	case <-ch:
		return true
	case <-fg.done:
		return true
	default:
		return false
	}
}

// end waits for the fetch to return (every archive durable in the cache)
// and returns where each archive came from. With abandon, it first cancels
// what is still downloading.
func (fg *fetching) end(abandon bool) (map[packages.Digest]string, error) {
	if abandon {
		fg.cancel()
	}
	<-fg.done
	fg.cancel()
	return fg.sources, fg.err
}

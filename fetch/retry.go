package fetch

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds how hard the Fetcher tries one source for one blob. The
// zero value is the default policy.
type RetryPolicy struct {
	// Attempts per source and blob, counting the first; 0 means 4. A digest
	// or size mismatch is never retried from the same source.
	Attempts int
	// Base is the backoff before the second attempt; it doubles with every
	// further attempt, up to Max. 0 means 250 ms.
	Base time.Duration
	// Max caps one backoff, also one asked for with Retry-After. 0 means 10 s.
	Max time.Duration
	// Stall ends an attempt when no byte arrived for this long (a dead
	// connection, a slow-loris trickle). 0 means 30 s.
	Stall time.Duration
	// AttemptTimeout caps one attempt in total. 0 means 5 minutes plus the
	// time the remaining bytes take at 64 KiB/s, so that a big blob on a slow
	// link is not cut off while a trickle still is.
	AttemptTimeout time.Duration
}

// Defaults of RetryPolicy.
const (
	DefaultAttempts = 4
	DefaultBase     = 250 * time.Millisecond
	DefaultMax      = 10 * time.Second
	DefaultStall    = 30 * time.Second
	minAttemptTime  = 5 * time.Minute
	slowestRate     = 64 << 10 // bytes per second assumed by the default AttemptTimeout
)

func (r RetryPolicy) attempts() int {
	if r.Attempts <= 0 {
		return DefaultAttempts
	}
	return r.Attempts
}

func (r RetryPolicy) stall() time.Duration {
	if r.Stall <= 0 {
		return DefaultStall
	}
	return r.Stall
}

func (r RetryPolicy) attemptTimeout(remaining int64) time.Duration {
	if r.AttemptTimeout > 0 {
		return r.AttemptTimeout
	}
	return minAttemptTime + time.Duration(remaining/slowestRate)*time.Second
}

// backoff returns how long to wait before attempt number n (n >= 1 is the
// second attempt): Base·2^(n-1) capped at Max, with jitter in its upper half
// so that parallel downloads do not hammer a recovering mirror in step. A
// Retry-After from the server is honoured up to Max.
func (r RetryPolicy) backoff(n int, lastErr error) time.Duration {
	base, ceiling := r.Base, r.Max
	if base <= 0 {
		base = DefaultBase
	}
	if ceiling <= 0 {
		ceiling = DefaultMax
	}
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	d = d/2 + rand.N(d/2+1)
	var status *HTTPStatusError
	if errors.As(lastErr, &status) && status.RetryAfter > d {
		d = min(status.RetryAfter, ceiling)
	}
	return d
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

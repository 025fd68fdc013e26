package peer

import (
	"net/netip"
	"sync"
	"time"
)

// maxSources bounds the rate limiter's table. Only senders inside a served
// subnet reach it, so a /24 needs 254 entries; a flood of spoofed in-subnet
// addresses past the bound is refused until entries go idle.
const maxSources = 4096

// limiter is a token bucket per source IP: each source may send burst
// queries at once, then rate per second. Its table is bounded: idle entries
// (full buckets) are swept when it fills, and a new source is refused while
// it is still full.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	if rate <= 0 {
		rate = DefaultQueryRate
	}
	if burst <= 0 {
		burst = DefaultQueryBurst
	}
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token from src's bucket, reporting false when it is empty.
func (l *limiter) allow(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= maxSources {
			l.sweep(now)
		}
		if len(l.buckets) >= maxSources {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the sources whose bucket has refilled: they are
// indistinguishable from new ones.
func (l *limiter) sweep(now time.Time) {
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, a)
		}
	}
}

// size returns how many sources the table holds.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

package peer

import (
	"net/netip"
	"testing"
	"time"
)

// clock is a fake time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func addr(i int) netip.Addr              { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
func allowN(l *limiter, a netip.Addr, n int) (ok int) {
	for range n {
		if l.allow(a) {
			ok++
		}
	}
	return ok
}

func TestLimiter(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLimiter(10, 5, c.now)
	a, b := addr(1), addr(2)
	if got := allowN(l, a, 8); got != 5 {
		t.Errorf("burst: %d allowed, want 5", got)
	}
	if got := allowN(l, b, 1); got != 1 {
		t.Error("another source shares the first one's bucket")
	}
	c.advance(300 * time.Millisecond) // 3 tokens at 10/s
	if got := allowN(l, a, 5); got != 3 {
		t.Errorf("after 300ms: %d allowed, want 3", got)
	}
	c.advance(time.Hour) // refills to the burst, no more
	if got := allowN(l, a, 10); got != 5 {
		t.Errorf("after an hour: %d allowed, want 5", got)
	}
}

func TestLimiterBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := newLimiter(1, 2, c.now)
	for i := range maxSources {
		l.allow(addr(i)) // each takes one of two tokens
	}
	if l.size() != maxSources {
		t.Fatalf("size %d, want %d", l.size(), maxSources)
	}
	// Full of busy sources: a new one is refused, the table does not grow.
	if l.allow(addr(maxSources)) {
		t.Error("a new source was let in while the table is full of busy ones")
	}
	if l.size() != maxSources {
		t.Errorf("size %d, want %d", l.size(), maxSources)
	}
	// Once they have gone idle (refilled), they are swept for newcomers.
	c.advance(2 * time.Second)
	if !l.allow(addr(maxSources)) {
		t.Error("a new source was refused after the others went idle")
	}
	if l.size() != 1 {
		t.Errorf("size %d after the sweep, want 1", l.size())
	}
}

package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/packets-dev/packets/packages"
)

// writeSlowly writes data into w's part in chunks, a pause between them,
// then commits it (or, with abandon, closes it unfinished). It returns when
// the part is open and locked, and reports on done when it is finished.
func writeSlowly(t *testing.T, c *Cache, w Want, data []byte, chunks int, abandon bool) (done chan error) {
	t.Helper()
	p, err := openPart(c.partPath(w.Digest), w)
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() {
		step := (len(data) + chunks - 1) / chunks
		for i := 0; i < len(data); i += step {
			if abandon && i >= len(data)/2 {
				done <- p.close()
				return
			}
			if _, err := p.Write(data[i:min(i+step, len(data))]); err != nil {
				done <- err
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
		if err := p.check(); err != nil {
			done <- err
			return
		}
		done <- p.commit(c.Path(w.Digest))
	}()
	return done
}

func TestFollowReadsAsTheBlobGrows(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	data, w := testBlob("grow", 300_000, 1)
	if _, ok := c.InProgress(w.Digest); ok {
		t.Fatal("InProgress before any download")
	}
	done := writeSlowly(t, c, w, data, 20, false)
	if _, ok := c.InProgress(w.Digest); !ok {
		t.Fatal("not InProgress while written")
	}
	fl, err := c.Follow(t.Context(), w.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	got, err := io.ReadAll(fl)
	if err != nil {
		t.Fatalf("ReadAll: %v after %d bytes", err, len(got))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if _, ok := c.InProgress(w.Digest); ok {
		t.Error("still InProgress once in place")
	}
	if _, err := c.Follow(t.Context(), w.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Follow of a complete blob: %v, want ErrNotFound", err)
	}
}

func TestFollowAbandoned(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	data, w := testBlob("half", 100_000, 2)
	done := writeSlowly(t, c, w, data, 10, true)
	fl, err := c.Follow(t.Context(), w.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	got, err := io.ReadAll(fl)
	if !errors.Is(err, ErrAbandoned) {
		t.Fatalf("ReadAll of an abandoned download: %d bytes, %v; want ErrAbandoned", len(got), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The part is kept to resume, but nobody writes it: not offered.
	if _, ok := c.InProgress(w.Digest); ok {
		t.Error("a part nobody writes is InProgress")
	}
	if _, err := c.Follow(t.Context(), w.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Follow of a part nobody writes: %v, want ErrNotFound", err)
	}
}

func TestFollowRestartedAndStalled(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	data, w := testBlob("restart", 10_000, 3)
	p, err := openPart(c.partPath(w.Digest), w)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if _, err := p.Write(data[:5000]); err != nil {
		t.Fatal(err)
	}
	fl, err := c.Follow(t.Context(), w.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	fl.Stall = 50 * time.Millisecond
	buf := make([]byte, 8000)
	if n, err := fl.Read(buf); n != 5000 || err != nil {
		t.Fatalf("Read = %d, %v; want the 5000 held", n, err)
	}
	// Nothing more arrives: a stall.
	start := time.Now()
	if _, err := fl.Read(buf); !errors.As(err, new(*StallError)) {
		t.Fatalf("Read with nothing arriving: %v, want a *StallError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stall took %s to be noticed", d)
	}
	// The download starts again from the first byte: what was read is
	// no longer a prefix.
	if err := p.reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Read(buf); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Read after the part was emptied: %v, want ErrAbandoned", err)
	}
}

func TestFollowStopsWithItsContext(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	_, w := testBlob("ctx", 1000, 4)
	p, err := openPart(c.partPath(w.Digest), w)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx, cancel := context.WithCancel(t.Context())
	fl, err := c.Follow(ctx, w.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := fl.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
}

// TestFollowWaitsForAClaimedBlob: a blob claimed but not started yet is
// waited for, then followed; once the claim is let go without it, Follow
// stops waiting at once.
func TestFollowWaitsForAClaimedBlob(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	data, w := testBlob("claimed", 50_000, 5)
	_, other := testBlob("never", 1000, 6)
	cl, err := c.claim([]packages.Digest{w.Digest, other.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.InProgress(w.Digest); !ok || p.Held != 0 || p.Intent != IntentUndecided {
		t.Fatalf("InProgress of a claimed blob: %+v, %v", p, ok)
	}
	if err := cl.decide(map[packages.Digest]bool{w.Digest: true}); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.InProgress(w.Digest); p.Intent != IntentMirror {
		t.Errorf("intent after decide: %c, want m", p.Intent)
	}
	if p, _ := c.InProgress(other.Digest); p.Intent != IntentPeer {
		t.Errorf("intent of the other after decide: %c, want p", p.Intent)
	}
	got := make(chan []byte, 1)
	go func() {
		fl, err := c.Follow(t.Context(), w.Digest)
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		defer fl.Close()
		b, err := io.ReadAll(fl)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	time.Sleep(30 * time.Millisecond) // the follower waits for the download to start
	done := writeSlowly(t, c, w, data, 5, false)
	if b := <-got; !bytes.Equal(b, data) {
		t.Errorf("followed %d bytes, want the %d written", len(b), len(data))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cl.release()
	start := time.Now()
	if _, err := c.Follow(t.Context(), other.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Follow of a blob no longer claimed: %v, want ErrNotFound", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Follow waited %s for a blob no longer claimed", d)
	}
	if _, ok := c.InProgress(other.Digest); ok {
		t.Error("InProgress after the claim was let go")
	}
}

package peer

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/fetch"
)

// world is a LAN on 127.0.0.1: blobs, a mirror holding all of them, and a
// client whose Fetcher asks a peer Source first, then the mirror.
type world struct {
	blobs  [][]byte
	wants  []fetch.Want
	mirror *mirror
}

func newWorld(t *testing.T, sizes ...int) *world {
	w := &world{}
	files := map[string][]byte{}
	for i, n := range sizes {
		b, want := testBlob("pkg"+string(rune('a'+i)), n, uint64(i+10))
		w.blobs = append(w.blobs, b)
		w.wants = append(w.wants, want)
		files["/"+want.Path] = b
	}
	w.mirror = newMirror(t, files)
	return w
}

// source returns a peer Source querying targets on 127.0.0.1, with short
// per-peer bounds.
func (w *world) source(targets ...*net.UDPAddr) *Source {
	return &Source{
		Config: Config{Window: 200 * time.Millisecond}, Conn: loopConn, Targets: unicast(targets...),
		Stall: 500 * time.Millisecond,
	}
}

// fetchAll runs a Fetcher (peer source, then the mirror) into a new cache
// and checks that every blob in it is right.
func (w *world) fetchAll(t *testing.T, src *Source) ([]fetch.Result, *fetch.Cache) {
	t.Helper()
	cache := &fetch.Cache{Dir: t.TempDir()}
	f := &fetch.Fetcher{
		Cache: cache, Sources: []fetch.Source{src, w.mirror.source(t)},
		Retry: fetch.RetryPolicy{Base: time.Millisecond, Max: 10 * time.Millisecond},
	}
	res, err := f.FetchAll(t.Context(), w.wants)
	// A connection dialled for a request that another one served sits
	// unused, and the server's shutdown waits 5 s for such a one.
	src.client().CloseIdleConnections()
	if err != nil {
		t.Fatal(err)
	}
	checkCache(t, cache, w.wants)
	return res, cache
}

// checkCache asserts that the cache holds exactly the wanted blobs, each
// hashing to its name, and no part file.
func checkCache(t *testing.T, cache *fetch.Cache, wants []fetch.Want) {
	t.Helper()
	for _, w := range wants {
		if _, err := cache.OpenVerified(w.Digest, w.Size); err != nil {
			t.Errorf("cache: %v", err)
		}
	}
	entries, _ := os.ReadDir(cache.Dir)
	if len(entries) != len(wants) {
		t.Errorf("cache holds %d files, want %d", len(entries), len(wants))
	}
}

func sources(res []fetch.Result) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Source)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestSourceFromPeer(t *testing.T) {
	w := newWorld(t, 1000, 70000, 300000)
	s := serve(t, &Server{Cache: newCache(t, w.blobs...)})
	src := w.source(s.udp)
	res, _ := w.fetchAll(t, src)
	if diff := cmp.Diff(repeat("peer "+s.http.String(), 3), sources(res)); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	for _, want := range w.wants {
		if ep, ok := src.Origin(want.Digest); !ok || ep != s.http {
			t.Errorf("Origin(%s) = %v, %v; want %v", want.Name, ep, ok, s.http)
		}
	}
	if got := w.mirror.requests(); len(got) != 0 {
		t.Errorf("the mirror was asked: %v", got)
	}
	if st := s.Stats(); st.Answered != 3 || st.Served != 3 {
		t.Errorf("server stats %+v, want 3 answered and served", st)
	}
}

func TestSourceNoPeer(t *testing.T) {
	w := newWorld(t, 1000, 2000)
	s := serve(t, &Server{Cache: newCache(t)}) // holds nothing
	src := w.source(s.udp)
	res, _ := w.fetchAll(t, src)
	if diff := cmp.Diff(repeat(w.mirror.source(t).String(), 2), sources(res)); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if got := len(w.mirror.requests()); got != 2 {
		t.Errorf("mirror requests = %d, want 2", got)
	}
	if src.String() != "LAN peers" {
		t.Errorf("String() = %q after delivering nothing", src.String())
	}
}

// hostile returns an HTTP handler that misbehaves in the given way when
// asked for blob b.
func hostile(kind string, b []byte, elsewhere string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch kind {
		case "wrong bytes": // one byte flipped, ranges honoured
			bad := append([]byte(nil), b...)
			bad[len(bad)/2] ^= 0xff
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
		case "truncated", "stalls":
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b[:len(b)/2])
			if kind == "stalls" {
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}
		case "trickles":
			trickle(w, r, b)
		case "wrong bytes, truncated":
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(make([]byte, len(b)/2))
		case "extra bytes":
			w.Write(append(append([]byte(nil), b...), "trailing garbage"...))
		case "500":
			http.Error(w, "oops", 500)
		case "404":
			http.NotFound(w, r)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!DOCTYPE html><html><body>captive portal</body></html>"))
		case "redirect":
			http.Redirect(w, r, elsewhere+r.URL.Path, http.StatusFound)
		}
	}
}

// trickle sends b a byte at a time, every few milliseconds: never a stall,
// always too slow.
func trickle(w http.ResponseWriter, r *http.Request, b []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := range b {
		w.Write(b[i : i+1])
		w.(http.Flusher).Flush()
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// recorded is an HTTP server on 127.0.0.1 that records the Range header of
// every request.
type recorded struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

func record(t *testing.T, h http.Handler) *recorded {
	rec := &recorded{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.ranges = append(rec.ranges, r.Header.Get("Range"))
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorded) seen() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.ranges)
}

func (rec *recorded) port() uint16 {
	return netip.MustParseAddrPort(rec.Listener.Addr().String()).Port()
}

// goodPeer is a peer's real HTTP handler over a cache holding blobs,
// recorded.
func goodPeer(t *testing.T, blobs ...[]byte) *recorded {
	s := &Server{Cache: newCache(t, blobs...)}
	if err := s.init(); err != nil {
		t.Fatal(err)
	}
	return record(t, http.HandlerFunc(s.serveHTTP))
}

// TestSourceHostile puts a misbehaving peer before a good one (the fake
// discovery socket names the liar first): the blob must come from the
// good peer, resuming where the liar stopped when its bytes were a right
// prefix, and never from the mirror.
func TestSourceHostile(t *testing.T) {
	const size = 100000
	tests := []struct {
		kind      string
		fromLiar  bool     // its bytes were right after all
		goodRange []string // what the good peer was asked for
	}{
		{kind: "wrong bytes", goodRange: []string{""}},
		{kind: "truncated", goodRange: []string{"bytes=50000-"}},
		{kind: "stalls", goodRange: []string{"bytes=50000-"}},
		{kind: "trickles", goodRange: nil},
		{kind: "wrong bytes, truncated", goodRange: []string{"bytes=50000-", ""}},
		{kind: "extra bytes", fromLiar: true},
		{kind: "500", goodRange: []string{""}},
		{kind: "404", goodRange: []string{""}},
		{kind: "html", goodRange: []string{""}},
		{kind: "redirect", goodRange: []string{""}},
		{kind: "refused", goodRange: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			w := newWorld(t, size)
			good := goodPeer(t, w.blobs...)
			liar := record(t, hostile(tt.kind, w.blobs[0], good.URL))
			liarEP := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), liar.port())
			if tt.kind == "refused" {
				liar.Close()
			}
			src := w.source(responder(t, answersFor(liar.port(), good.port())))
			src.MinRate = 1 << 20 // 100 kB in 0.1 s, plus the stall grace
			res, _ := w.fetchAll(t, src)

			want := "peer 127.0.0.1:" + strconv.Itoa(int(good.port()))
			if tt.fromLiar {
				want = "peer " + liarEP.String()
			}
			if diff := cmp.Diff([]string{want}, sources(res)); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if tt.kind != "refused" && len(liar.seen()) == 0 {
				t.Error("the liar was never asked")
			}
			if got := w.mirror.requests(); len(got) != 0 {
				t.Errorf("the mirror was asked: %v", got)
			}
			if !src.banned.has(liarEP) {
				t.Error("the liar is not banned")
			}
			if tt.goodRange != nil {
				if diff := cmp.Diff(tt.goodRange, good.seen()); diff != "" {
					t.Errorf("requests to the good peer (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestSourceOnlyLiars: with no good peer, the blob comes from the mirror,
// quickly, and the liar's bytes never enter the cache (fetchAll checks
// every cached blob's hash).
func TestSourceOnlyLiars(t *testing.T) {
	for _, kind := range []string{"wrong bytes", "stalls", "wrong bytes, truncated", "500", "html"} {
		t.Run(kind, func(t *testing.T) {
			w := newWorld(t, 100000, 5000)
			liar := record(t, hostile(kind, w.blobs[0], ""))
			src := w.source(responder(t, answersFor(liar.port())))
			res, _ := w.fetchAll(t, src)
			mirror := w.mirror.source(t).String()
			if diff := cmp.Diff([]string{mirror, mirror}, sources(res)); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			// The liar is asked at most once per blob (both may ask it at
			// once), then banned.
			if got := len(liar.seen()); got < 1 || got > 2 {
				t.Errorf("the liar was asked %d times, want 1 or 2", got)
			}
		})
	}
}

// TestSourceResume: a part file left by an earlier run is continued from
// a peer with a Range request; wrong bytes after a prefix the Source did
// not see are caught by the Fetcher, and the retry from 0 finds the liar.
func TestSourceResume(t *testing.T) {
	tests := []struct {
		name   string
		liar   bool
		ranges []string // asked of the good peer
	}{
		{name: "good peer", ranges: []string{"bytes=30000-"}},
		{name: "liar first", liar: true, ranges: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 100000)
			good := goodPeer(t, w.blobs...)
			ports := []uint16{good.port()}
			var liar *recorded
			if tt.liar {
				liar = record(t, hostile("wrong bytes", w.blobs[0], ""))
				ports = []uint16{liar.port(), good.port()}
			}
			src := w.source(responder(t, answersFor(ports...)))
			cache := &fetch.Cache{Dir: t.TempDir()}
			want := w.wants[0]
			part := cache.Path(want.Digest)[:len(cache.Path(want.Digest))-len(".tar.zst")] + ".part"
			if err := os.WriteFile(part, w.blobs[0][:30000], 0o644); err != nil {
				t.Fatal(err)
			}
			f := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{src, w.mirror.source(t)},
				Retry: fetch.RetryPolicy{Base: time.Millisecond}}
			res, err := f.FetchAll(t.Context(), w.wants)
			if err != nil {
				t.Fatal(err)
			}
			checkCache(t, cache, w.wants)
			if got, want := res[0].Source, "peer 127.0.0.1:"+strconv.Itoa(int(good.port())); got != want {
				t.Errorf("source %q, want %q", got, want)
			}
			if diff := cmp.Diff(tt.ranges, good.seen()); diff != "" {
				t.Errorf("requests to the good peer (-want +got):\n%s", diff)
			}
			if liar != nil {
				if diff := cmp.Diff([]string{"bytes=30000-", ""}, liar.seen()); diff != "" {
					t.Errorf("requests to the liar (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSourceFetchErrors(t *testing.T) {
	_, w := testBlob("x", 1000, 1)
	tests := []struct {
		name    string
		targets func() ([]*net.UDPAddr, error)
	}{
		{"nobody answers", unicast(responder(t, answersFor()))},
		{"no targets", unicast()},
		{"targets fail", func() ([]*net.UDPAddr, error) { return nil, os.ErrPermission }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &Source{Config: Config{Window: 50 * time.Millisecond}, Conn: loopConn, Targets: tt.targets}
			var sink strings.Builder
			n, err := src.Fetch(t.Context(), w, &sink, 0)
			if n != 0 || !isNotFound(err) {
				t.Errorf("Fetch = %d, %v; want 0 and fetch.ErrNotFound", n, err)
			}
		})
	}
}

// TestSourceManyPeers: blobs spread over two peers, fetched concurrently;
// Origin names the right one for each, String says "LAN peers".
func TestSourceManyPeers(t *testing.T) {
	w := newWorld(t, 1000, 2000, 3000, 4000, 5000, 6000)
	s1 := serve(t, &Server{Cache: newCache(t, w.blobs[:3]...)})
	s2 := serve(t, &Server{Cache: newCache(t, w.blobs[3:]...)})
	src := w.source(s1.udp, s2.udp)
	w.fetchAll(t, src)
	for i, want := range w.wants {
		wantEP := s1.http
		if i >= 3 {
			wantEP = s2.http
		}
		if ep, ok := src.Origin(want.Digest); !ok || ep != wantEP {
			t.Errorf("Origin(%s) = %v, %v; want %v", want.Name, ep, ok, wantEP)
		}
	}
	if got := src.String(); got != "LAN peers" {
		t.Errorf("String() = %q, want %q", got, "LAN peers")
	}
	if got := w.mirror.requests(); len(got) != 0 {
		t.Errorf("the mirror was asked: %v", got)
	}
}

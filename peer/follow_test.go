package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

func TestFollowOrder(t *testing.T) {
	ep := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	key := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	mine := func() (netip.Addr, bool) { return key("10.0.0.5"), true }
	none := func() (netip.Addr, bool) { return netip.Addr{}, false }
	und, mir, peer := fetch.IntentUndecided, fetch.IntentMirror, fetch.IntentPeer
	for _, tc := range []struct {
		name    string
		key     func() (netip.Addr, bool)
		pending []reply
		want    []netip.AddrPort
	}{
		{"nobody", mine, nil, []netip.AddrPort{}},
		{"only higher keys, undecided: to the mirror", mine, []reply{
			{ep: ep("10.0.0.9:9123"), intent: und, key: key("10.0.0.9")},
			{ep: ep("192.168.0.1:9123"), intent: und, key: key("10.0.0.6")},
		}, []netip.AddrPort{}},
		{"lower keys, lowest first, whatever the address answered from", mine, []reply{
			{ep: ep("10.0.0.4:9123"), intent: und, key: key("10.0.0.4")},
			{ep: ep("192.168.0.9:9123"), intent: und, key: key("10.0.0.2")},
			{ep: ep("10.0.0.1:9123"), intent: und, key: key("10.0.0.7")}, // a low address, a high key
		}, []netip.AddrPort{ep("192.168.0.9:9123"), ep("10.0.0.4:9123")}},
		{"bytes coming in, then mirror-bound, then lower keys", mine, []reply{
			{ep: ep("10.0.0.2:9123"), intent: und, key: key("10.0.0.2")},
			{ep: ep("10.0.0.9:9123"), held: 10, intent: peer, key: key("10.0.0.9")},
			{ep: ep("10.0.0.8:9123"), held: 500, intent: mir, key: key("10.0.0.8")},
			{ep: ep("10.0.0.7:9123"), intent: mir, key: key("10.0.0.7")},
			{ep: ep("10.0.0.6:9123"), intent: mir, key: key("10.0.0.6")},
		}, []netip.AddrPort{ep("10.0.0.8:9123"), ep("10.0.0.9:9123"), ep("10.0.0.6:9123"), ep("10.0.0.7:9123"), ep("10.0.0.2:9123")}},
		{"a host following a peer, nothing in yet: never followed", mine, []reply{
			{ep: ep("10.0.0.1:9123"), intent: peer, key: key("10.0.0.1")},
		}, []netip.AddrPort{}},
		{"no key of ours, or none of theirs: only bytes coming in and mirror-bound", none, []reply{
			{ep: ep("10.0.0.1:9123"), intent: und, key: key("10.0.0.1")},
			{ep: ep("10.0.0.2:9123"), intent: mir, key: key("10.0.0.2")},
			{ep: ep("10.0.0.3:9123"), held: 1, intent: und},
		}, []netip.AddrPort{ep("10.0.0.3:9123"), ep("10.0.0.2:9123")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, followOrder(tc.key, tc.pending), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostKey(t *testing.T) {
	ifs := []Interface{
		{Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "down", Flags: 0, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Name: "eth0", Flags: net.FlagUp, Nets: []netip.Prefix{netip.MustParsePrefix("192.168.1.7/24"), netip.MustParsePrefix("10.9.0.3/16")}},
		{Name: "eth1", Flags: net.FlagUp, Nets: []netip.Prefix{netip.MustParsePrefix("10.9.0.4/16")}},
	}
	if got := hostKey(ifs); got != netip.MustParseAddr("10.9.0.3") {
		t.Errorf("hostKey = %v, want 10.9.0.3", got)
	}
	if got := hostKey(ifs[:2]); got.IsValid() {
		t.Errorf("hostKey of loopback and down interfaces = %v, want none", got)
	}
}

// trickleMirror serves blobs slowly (in chunks, a pause between them), so
// that downloads overlap, and counts the GETs of each path.
func trickleMirror(t *testing.T, files map[string][]byte, chunks int, pause time.Duration) (*fetch.Mirror, func() map[string]int) {
	var mu sync.Mutex
	gets := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok || r.Header.Get("Range") != "" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		gets[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		step := (len(b) + chunks - 1) / chunks
		for i := 0; i < len(b); i += step {
			if _, err := w.Write(b[i:min(i+step, len(b))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(pause)
		}
	}))
	t.Cleanup(srv.Close)
	m, err := fetch.NewMirror(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return m, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(gets)
	}
}

// TestSimultaneousHostsFetchOnce: three hosts (127.0.0.10–12, each with
// its daemon serving its own cache) fetch the same blobs at the same
// moment from a slow mirror. The mirror serves each blob once: the lowest
// host fetches it, the others take it from that host's daemon as it
// arrives ("P:" answers, Cache.Follow). Every cache ends up right.
func TestSimultaneousHostsFetchOnce(t *testing.T) {
	const hosts = 3
	var (
		files = map[string][]byte{}
		wants []fetch.Want
	)
	for i, n := range []int{400_000, 150_000} {
		b, w := testBlob(fmt.Sprintf("sim%d", i), n, uint64(40+i))
		files["/"+w.Path] = b
		wants = append(wants, w)
	}
	mirror, gets := trickleMirror(t, files, 20, 10*time.Millisecond)

	type host struct {
		ip     netip.Addr
		cache  *fetch.Cache
		daemon *running
	}
	var hs []*host
	for i := range hosts {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)})
		h := &host{ip: ip, cache: &fetch.Cache{Dir: t.TempDir()}}
		h.daemon = serveOn(t, &Server{Cache: h.cache, Key: ip}, ip)
		hs = append(hs, h)
	}
	results := make([][]fetch.Result, hosts)
	errs := make([]error, hosts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, h := range hs {
		var targets []*net.UDPAddr
		for _, o := range hs {
			if o != h { // a host's own daemon ignores its queries (fromSelf)
				targets = append(targets, o.daemon.udp)
			}
		}
		src := &Source{
			Config:  Config{Window: 100 * time.Millisecond},
			Conn:    func() (net.PacketConn, error) { return net.ListenPacket("udp4", netip.AddrPortFrom(h.ip, 0).String()) },
			Targets: unicast(targets...),
			Key:     func() (netip.Addr, bool) { return h.ip, true },
			Stall:   2 * time.Second,
		}
		f := &fetch.Fetcher{Cache: h.cache, Sources: []fetch.Source{src, mirror},
			Retry: fetch.RetryPolicy{Base: time.Millisecond, Max: 10 * time.Millisecond}}
		wg.Go(func() {
			<-start
			results[i], errs[i] = f.FetchAll(t.Context(), wants)
		})
	}
	close(start)
	wg.Wait()
	for i, h := range hs {
		if errs[i] != nil {
			t.Fatalf("host %s: %v", h.ip, errs[i])
		}
		checkCache(t, h.cache, wants)
		t.Logf("host %s: %v", h.ip, sources(results[i]))
	}
	want := map[string]int{}
	for _, w := range wants {
		want["/"+w.Path] = 1
	}
	if diff := cmp.Diff(want, gets()); diff != "" {
		t.Errorf("mirror GETs per blob (-want +got):\n%s", diff)
	}
	// The lowest host fetched from the mirror; the others followed it.
	for _, r := range results[0] {
		if r.Source != mirror.String() {
			t.Errorf("the lowest host got %s from %s, want the mirror", r.Want.Name, r.Source)
		}
	}
	var followed int64
	for _, h := range hs {
		followed += h.daemon.Stats().Followed
	}
	if followed == 0 {
		t.Error("no daemon served a blob as it downloaded")
	}
}

// TestServeWhileDownloading: a blob this host is downloading is served
// whole, as it arrives, to a GET from its first byte; a range request for
// it is refused with 416; a download abandoned halfway cuts the body short.
func TestServeWhileDownloading(t *testing.T) {
	blob, w := testBlob("slow", 200_000, 60)
	mirror, _ := trickleMirror(t, map[string][]byte{"/" + w.Path: blob}, 20, 10*time.Millisecond)
	cache := &fetch.Cache{Dir: t.TempDir()}
	s := serve(t, &Server{Cache: cache})
	f := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{mirror}}
	fetched := make(chan error, 1)
	go func() { _, err := f.FetchAll(t.Context(), []fetch.Want{w}); fetched <- err }()
	url := "http://" + s.http.String() + "/blobs/" + w.Digest.String()
	waitFor(t, func() bool { _, ok := cache.InProgress(w.Digest); return ok })

	code, _ := rawGet(t, s.http.String(), "GET", "/blobs/"+w.Digest.String(), "Range: bytes=10-\r\n")
	if code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range GET of a blob downloading: %d, want 416", code)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
		t.Fatalf("GET while downloading: %d, %d bytes, %v; want 200 and the %d of the blob", resp.StatusCode, len(got), err, len(blob))
	}
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Followed != 1 {
		t.Errorf("Followed = %d, want 1", st.Followed)
	}

	// A download that stops halfway: the reader gets a short body and an
	// error, never a clean end.
	blob2, w2 := testBlob("stops", 200_000, 61)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", fmt.Sprint(len(blob2)))
		rw.Write(blob2[:len(blob2)/2])
		rw.(http.Flusher).Flush()
		<-stop
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	half, err := fetch.NewMirror(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	f2 := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{half}, Retry: fetch.RetryPolicy{Attempts: 1}}
	go func() { _, err := f2.FetchAll(t.Context(), []fetch.Want{w2}); fetched <- err }()
	waitFor(t, func() bool { p, ok := cache.InProgress(w2.Digest); return ok && p.Held > 0 })
	resp, err = http.Get("http://" + s.http.String() + "/blobs/" + w2.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(got) >= len(blob2) {
		t.Errorf("GET of an abandoned download: %d bytes, %v; want a short body and an error", len(got), err)
	}
	if err := <-fetched; err == nil {
		t.Error("the half download succeeded")
	}
}

// waitFor polls cond, bounded: a few seconds at most.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5 s")
}

// gate is a Preparer source that has nothing: its Prepare waits for
// release, so that a test can look at the claims in between.
type gate struct {
	prepared, release chan struct{}
}

func (g *gate) Prepare(_ context.Context, wants []fetch.Want) []packages.Digest {
	close(g.prepared)
	<-g.release
	var out []packages.Digest
	for _, w := range wants {
		out = append(out, w.Digest)
	}
	return out
}

func (g *gate) Fetch(context.Context, fetch.Want, io.Writer, int64) (int64, error) {
	return 0, fetch.ErrNotFound
}

func (g *gate) String() string { return "gate" }

// TestServerAnswersPending: a blob claimed by a FetchAll is answered "P"
// with the host's key: undecided, then mirror-bound once Prepare found
// nobody, with the bytes held while they come in, none when they stopped
// coming a second ago; "H" once in place.
func TestServerAnswersPending(t *testing.T) {
	blob, w := testBlob("claimed", 200_000, 70)
	pause := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		rw.Write(blob[:1000])
		rw.(http.Flusher).Flush()
		<-pause
		rw.Write(blob[1000:])
	}))
	defer srv.Close()
	mirror, err := fetch.NewMirror(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	key := netip.MustParseAddr("10.1.2.3")
	cache := &fetch.Cache{Dir: t.TempDir()}
	s := serve(t, &Server{Cache: cache, Key: key})
	g := &gate{prepared: make(chan struct{}), release: make(chan struct{})}
	f := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{g, mirror}}
	fetched := make(chan error, 1)
	go func() { _, err := f.FetchAll(t.Context(), []fetch.Want{w}); fetched <- err }()
	client := listenUDP(t, "127.0.0.1:0")
	ask := func() Reply {
		t.Helper()
		r, ok := ParseReply(exchange(t, client, s.udp, Query(w.Digest)))
		if !ok {
			t.Fatal("not an answer")
		}
		return r
	}
	port := int(s.http.Port())

	<-g.prepared
	if got, want := ask(), (Reply{Digest: w.Digest, Port: port, Pending: true, Intent: fetch.IntentUndecided, Key: key}); got != want {
		t.Errorf("claimed, undecided: %+v, want %+v", got, want)
	}
	close(g.release)
	waitFor(t, func() bool { p, ok := cache.InProgress(w.Digest); return ok && p.Held == 1000 })
	if got, want := ask(), (Reply{Digest: w.Digest, Port: port, Pending: true, Held: 1000, Intent: fetch.IntentMirror, Key: key}); got != want {
		t.Errorf("downloading: %+v, want %+v", got, want)
	}
	time.Sleep(flowing + 100*time.Millisecond)
	if got := ask(); got.Held != 0 || !got.Pending {
		t.Errorf("bytes stopped a second ago: %+v, want held 0", got)
	}
	close(pause)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if got := ask(); got.Pending {
		t.Errorf("in place: %+v, want an H answer", got)
	}
	if st := s.Stats(); st.Pending != 3 {
		t.Errorf("Pending = %d, want 3", st.Pending)
	}
}

// TestPrepareAsksOnce: a FetchAll of many blobs asks about all of them in
// one batch: each blob once, and those nobody holds once more, and no
// blob again when it is fetched. Half come from the peer, half from the
// mirror.
func TestPrepareAsksOnce(t *testing.T) {
	const n = 60
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 1000 + i
	}
	w := newWorld(t, sizes...)
	s := serve(t, &Server{Cache: newCache(t, w.blobs[:n/2]...)})
	src := w.source(s.udp)
	res, _ := w.fetchAll(t, src)
	var fromPeer int
	for _, r := range res {
		if r.Source != w.mirror.source(t).String() {
			fromPeer++
		}
	}
	if fromPeer != n/2 || len(w.mirror.requests()) != n/2 {
		t.Errorf("%d blobs from the peer and %d from the mirror, want %d each", fromPeer, len(w.mirror.requests()), n/2)
	}
	if got, want := s.Stats().Datagrams, int64(n+n/2); got != want {
		t.Errorf("the peer got %d queries for %d blobs, want %d: each once, the unheld twice", got, n, want)
	}
}

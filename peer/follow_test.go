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
	const mine = HostKey(5)
	und, mir, peer := fetch.IntentUndecided, fetch.IntentMirror, fetch.IntentPeer
	for _, tc := range []struct {
		name    string
		key     HostKey
		pending []reply
		want    []netip.AddrPort
	}{
		{"nobody", mine, nil, []netip.AddrPort{}},
		{"only higher or equal keys, undecided: to the mirror", mine, []reply{
			{ep: ep("10.0.0.9:9123"), intent: und, key: 9},
			{ep: ep("192.168.0.1:9123"), intent: und, key: 6},
			{ep: ep("10.0.0.2:9123"), intent: und, key: mine},
		}, []netip.AddrPort{}},
		{"lower keys, lowest first, whatever the address answered from", mine, []reply{
			{ep: ep("10.0.0.4:9123"), intent: und, key: 4},
			{ep: ep("192.168.0.9:9123"), intent: und, key: 2},
			{ep: ep("10.0.0.1:9123"), intent: und, key: 7}, // a low address, a high key
			{ep: ep("10.0.0.3:9123"), intent: und, key: 0}, // no key: never followed on it
		}, []netip.AddrPort{ep("192.168.0.9:9123"), ep("10.0.0.4:9123")}},
		{"bytes coming in, then mirror-bound, then lower keys", mine, []reply{
			{ep: ep("10.0.0.2:9123"), intent: und, key: 2},
			{ep: ep("10.0.0.9:9123"), held: 10, intent: peer, key: 9},
			{ep: ep("10.0.0.8:9123"), held: 500, intent: mir, key: 8},
			{ep: ep("10.0.0.7:9123"), intent: mir, key: 7},
			{ep: ep("10.0.0.6:9123"), intent: mir, key: 6},
		}, []netip.AddrPort{ep("10.0.0.8:9123"), ep("10.0.0.9:9123"), ep("10.0.0.6:9123"), ep("10.0.0.7:9123"), ep("10.0.0.2:9123")}},
		{"a host following a peer, nothing in yet: never followed", mine, []reply{
			{ep: ep("10.0.0.1:9123"), intent: peer, key: 1},
		}, []netip.AddrPort{}},
		{"no key of ours: only bytes coming in and mirror-bound", 0, []reply{
			{ep: ep("10.0.0.1:9123"), intent: und, key: 1},
			{ep: ep("10.0.0.2:9123"), intent: mir, key: 2},
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

func TestHostKeys(t *testing.T) {
	if a, b := MachineKey("0123456789abcdef0123456789abcdef\n"), MachineKey("0123456789abcdef0123456789abcdee"); a == 0 || b == 0 || a == b {
		t.Errorf("MachineKey: %x, %x; want two different non-zero keys", a, b)
	}
	if k := MachineKey(" \n"); k != 0 {
		t.Errorf("MachineKey of nothing = %x, want 0", k)
	}
	up := net.FlagUp | net.FlagBroadcast
	ifs := []Interface{
		{Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "down", Flags: net.FlagBroadcast, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Name: "eth0", Flags: up, Nets: []netip.Prefix{netip.MustParsePrefix("192.168.1.7/24"), netip.MustParsePrefix("10.9.0.3/16")}},
		{Name: "eth1", Flags: up, Nets: []netip.Prefix{netip.MustParsePrefix("10.9.0.4/16")}},
		{Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint, Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}},
	}
	if got, want := InterfaceKey(ifs, Config{}), HostKey(0x0a090003); got != want {
		t.Errorf("InterfaceKey = %x, want %x (10.9.0.3)", got, want)
	}
	if got, want := InterfaceKey(ifs, Config{Interfaces: []string{"eth1"}}), HostKey(0x0a090004); got != want {
		t.Errorf("InterfaceKey of eth1 only = %x, want %x", got, want)
	}
	if got := InterfaceKey(ifs[:2], Config{}); got != 0 {
		t.Errorf("InterfaceKey of loopback and down interfaces = %x, want 0", got)
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
		h.daemon = serveOn(t, &Server{Cache: h.cache, Key: HostKey(10 + i)}, ip)
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
			Config:  Config{Window: 300 * time.Millisecond}, // hosts started together see each other, even on a loaded machine
			Conn:    func() (net.PacketConn, error) { return net.ListenPacket("udp4", netip.AddrPortFrom(h.ip, 0).String()) },
			Targets: unicast(targets...),
			Key:     h.daemon.Key,
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
	const key = HostKey(0x0a010203)
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

// TestPrepareLargeBatch: a batch of 2,000 blobs, asked of three daemons at
// once (one holds them all): every blob hears its holder. The queries are
// paced and the answers read as they come, so neither side's socket buffer
// overflows.
func TestPrepareLargeBatch(t *testing.T) {
	const n = 2000
	var blobs [][]byte
	var wants []fetch.Want
	for i := range n {
		b, w := testBlob(fmt.Sprintf("b%04d", i), 64, uint64(1000+i))
		blobs, wants = append(blobs, b), append(wants, w)
	}
	holder := serve(t, &Server{Cache: newCache(t, blobs...)})
	empty1 := serve(t, &Server{Cache: newCache(t)})
	empty2 := serve(t, &Server{Cache: newCache(t)})
	src := &Source{Config: Config{Window: 2 * time.Second}, Conn: loopConn, Targets: unicast(empty1.udp, holder.udp, empty2.udp)}
	if unfound := src.Prepare(t.Context(), wants); len(unfound) != 0 {
		t.Errorf("%d of %d blobs heard no holder (the holder answered %d queries of %d)", len(unfound), n, holder.Stats().Answered, holder.Stats().Datagrams)
	}
	for _, w := range wants {
		if got := src.takePrepared(w.Digest); got == nil || len(got.holders) != 1 || got.holders[0] != holder.http {
			t.Fatalf("%s: prepared %+v, want the holder", w.Name, got)
		}
	}
}

// TestFollowerWaitsForALeaderToStart: a host follows a lower one that has
// claimed a blob but starts downloading it only after longer than the
// follower's stall bound. The leader's daemon sends the headers at once,
// and the follower waits for the first byte (fetch.StartWait): the mirror
// serves the blob once.
func TestFollowerWaitsForALeaderToStart(t *testing.T) {
	blob, w := testBlob("late", 100_000, 80)
	mirror, gets := trickleMirror(t, map[string][]byte{"/" + w.Path: blob}, 4, 5*time.Millisecond)
	leaderIP, followerIP := netip.MustParseAddr("127.0.0.20"), netip.MustParseAddr("127.0.0.21")
	leaderCache := &fetch.Cache{Dir: t.TempDir()}
	leader := serveOn(t, &Server{Cache: leaderCache, Key: 1}, leaderIP)
	follower := serveOn(t, &Server{Cache: &fetch.Cache{Dir: t.TempDir()}, Key: 2}, followerIP)

	// The leader claims the blob and holds its Prepare until released.
	g := &gate{prepared: make(chan struct{}), release: make(chan struct{})}
	lf := &fetch.Fetcher{Cache: leaderCache, Sources: []fetch.Source{g, mirror}}
	led := make(chan error, 1)
	go func() { _, err := lf.FetchAll(t.Context(), []fetch.Want{w}); led <- err }()
	<-g.prepared

	src := &Source{
		Config: Config{Window: 50 * time.Millisecond},
		Conn: func() (net.PacketConn, error) {
			return net.ListenPacket("udp4", netip.AddrPortFrom(followerIP, 0).String())
		},
		Targets: unicast(leader.udp),
		Key:     follower.Key,
		Stall:   200 * time.Millisecond,
	}
	ff := &fetch.Fetcher{Cache: follower.Cache, Sources: []fetch.Source{src, mirror}}
	time.AfterFunc(600*time.Millisecond, func() { close(g.release) }) // three stall bounds later
	res, err := ff.FetchAll(t.Context(), []fetch.Want{w})
	src.client().CloseIdleConnections()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-led; err != nil {
		t.Fatal(err)
	}
	if want := "peer " + leader.http.String(); res[0].Source != want {
		t.Errorf("the follower got it from %s, want %s", res[0].Source, want)
	}
	if got := gets()["/"+w.Path]; got != 1 {
		t.Errorf("the mirror served the blob %d times, want once", got)
	}
}

// TestHostileDownloaderIsFollowedOnce: a LAN host claims to be fetching
// every blob from a mirror, then trickles. The client gives up on it
// within the bounds of a followed peer, takes the blob from the mirror,
// and does not follow that host again for the other blobs of the run.
func TestHostileDownloaderIsFollowedOnce(t *testing.T) {
	w := newWorld(t, 50_000, 50_000, 50_000)
	var mu sync.Mutex
	requests := 0
	liar := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		rw.WriteHeader(http.StatusOK)
		for range 100 {
			if _, err := rw.Write([]byte{0x28}); err != nil {
				return
			}
			rw.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	defer liar.Close()
	port := netip.MustParseAddrPort(liar.Listener.Addr().String()).Port()
	udp := responder(t, func(d packages.Digest, _ *net.UDPAddr) [][]byte {
		return [][]byte{Pending(d, int(port), 0, fetch.IntentMirror, 1)}
	})
	src := w.source(udp)
	src.StartWait = 100 * time.Millisecond
	src.MinRate = 8 << 20 // followed: held to 1 MiB/s, so 50 kB within the first 0.35 s
	res, _ := w.fetchAll(t, src)
	for _, r := range res {
		if r.Source != w.mirror.source(t).String() {
			t.Errorf("%s came from %s, want the mirror", r.Want.Name, r.Source)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The three blobs are fetched at once (Parallel 4): each may follow it
	// before the first failure is known, never twice.
	if requests > len(w.wants) {
		t.Errorf("the liar was followed %d times for %d blobs", requests, len(w.wants))
	}
}

// TestPrepareLargeBatchOfDownloads: 2,000 blobs a lower host has claimed,
// asked about with the default window: the second round (a short settle)
// still hears every claim, because its window runs from the last query.
func TestPrepareLargeBatchOfDownloads(t *testing.T) {
	const n = 2000
	var wants []fetch.Want
	for i := range n {
		_, w := testBlob(fmt.Sprintf("c%04d", i), 64, uint64(5000+i))
		wants = append(wants, w)
	}
	cache := &fetch.Cache{Dir: t.TempDir()}
	leader := serve(t, &Server{Cache: cache, Key: 1})
	g := &gate{prepared: make(chan struct{}), release: make(chan struct{})}
	f := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{g}}
	done := make(chan struct{})
	go func() { f.FetchAll(t.Context(), wants); close(done) }() // fails: the gate has nothing
	<-g.prepared
	defer func() { close(g.release); <-done }()

	src := &Source{Conn: loopConn, Targets: unicast(leader.udp), Key: 2}
	if unfound := src.Prepare(t.Context(), wants); len(unfound) != 0 {
		t.Errorf("%d of %d claimed blobs found nobody to follow (the leader answered %d of %d queries)",
			len(unfound), n, leader.Stats().Answered, leader.Stats().Datagrams)
	}
}

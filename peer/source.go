package peer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// Defaults of Source's per-peer bounds: a LAN peer that sends nothing for
// DefaultPeerStall, or delivers slower than DefaultPeerMinRate on average
// (after a grace of one stall period), is abandoned for the next one.
const (
	DefaultPeerStall   = 5 * time.Second
	DefaultPeerMinRate = 512 << 10 // bytes per second
)

// Source is a fetch.Source that finds each blob on the LAN: it sends a
// query (Config.UDPPort, to every target), and downloads the blob from the
// first peer that answers within Config.Window, falling back on the next
// answer when a peer fails. Build one per command run; it is safe for
// concurrent use. A peer that fails once (an HTTP error, a stall, a
// trickle, a truncated body, wrong bytes) is not used again by this
// Source. The zero values of the fields other than Config are defaults.
type Source struct {
	Config Config
	// Conn returns a new socket for one query; Source closes it. nil: a
	// UDP socket on 0.0.0.0, any port (broadcast allowed).
	Conn func() (net.PacketConn, error)
	// Targets returns where queries go. nil: BroadcastTargets of
	// SystemInterfaces, the directed broadcast address of every up,
	// broadcast-capable, non-loopback interface that Config allows. Tests
	// inject unicast 127.0.0.1 targets.
	Targets func() ([]*net.UDPAddr, error)
	// Key is this host's key, which orders the hosts downloading a blob at
	// the same moment (followOrder); it must be its daemon's Key. 0:
	// InterfaceKey of SystemInterfaces, looked up once.
	Key HostKey
	// Client fetches from peers. nil: a client without proxies (a peer is
	// on the LAN, never behind https_proxy) and with short dial and header
	// timeouts.
	Client  *http.Client
	Stall   time.Duration // per peer; 0: DefaultPeerStall
	MinRate int64         // per peer, bytes per second; 0: DefaultPeerMinRate
	// StartWait is how long a downloader followed may take to send its
	// first byte (its own download may not have started); 0:
	// fetch.StartWait, as long as its daemon waits.
	StartWait time.Duration

	once     sync.Once
	dflt     *http.Client
	keyOnce  sync.Once
	ifaceKey HostKey
	// banned holds the peers that failed: not asked again by this Source.
	banned peerSet
	// badFollow holds the downloaders whose download failed us: not
	// followed again by this Source (they may still hold blobs).
	badFollow peerSet

	mu sync.Mutex // guards origin and prepared
	// origin is the peer that completed each blob. A blob asked for again
	// (its delivery was refused) is forgotten until it completes again.
	origin map[packages.Digest]netip.AddrPort
	// prepared is what Prepare learnt of each blob, used (and dropped) by
	// the blob's first Fetch.
	prepared map[packages.Digest]*discovery
}

// peerSet is a set of peers, safe for concurrent use.
type peerSet struct {
	mu sync.Mutex
	m  map[netip.AddrPort]bool
}

func (p *peerSet) has(ep netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[ep]
}

func (p *peerSet) add(ep netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[netip.AddrPort]bool{}
	}
	p.m[ep] = true
}

// discovery is what the LAN said about one blob: who holds it, in answer
// order, and who is downloading it.
type discovery struct {
	holders []netip.AddrPort
	pending []reply
}

// String names the source for messages and fetch.Result.Source: "peer
// <addr>" when every blob this Source delivered so far came from that one
// peer, else "LAN peers" (several peers, or none yet). Fetches run
// concurrently, so use Origin for the exact peer of each blob.
func (s *Source) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var one netip.AddrPort
	for _, ep := range s.origin {
		if one.IsValid() && ep != one {
			return "LAN peers"
		}
		one = ep
	}
	if !one.IsValid() {
		return "LAN peers"
	}
	return "peer " + one.String()
}

// Origin returns the HTTP endpoint of the peer that delivered blob d (the
// last bytes of it), if this Source delivered it.
func (s *Source) Origin(d packages.Digest) (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, ok := s.origin[d]
	return ep, ok
}

// Fetch writes blob w from offset on to dst, from the first peer that
// answers a query for it, resuming on the next answering peer where a
// failed one stopped. When it starts at offset 0 it hashes what it writes:
// wrong bytes return a *MismatchError, which matches fetch.ErrRestart (the
// Fetcher discards them and asks again at once) and bans the peer when it
// sent them all (the next attempt skips it; when several peers sent some,
// those that failed are banned already and the last one is tried alone).
// No answer within the window, or only answers from peers that failed,
// is an error matching fetch.ErrNotFound: the Fetcher goes on to the
// mirrors.
func (s *Source) Fetch(ctx context.Context, w fetch.Want, dst io.Writer, offset int64) (int64, error) {
	s.mu.Lock()
	delete(s.origin, w.Digest) // asked again: what was delivered before was not kept
	s.mu.Unlock()
	var h hash.Hash
	out := &watchWriter{w: dst}
	if offset == 0 {
		h = sha256.New()
		out.h = h
	}
	var (
		written int64
		from    []netip.AddrPort
		errs    []error
		follows int
	)
	answered, err := s.eachPeer(ctx, w.Digest, true, func(ep netip.AddrPort, followed bool) bool {
		if s.banned.has(ep) {
			errs = append(errs, fmt.Errorf("peer %s: failed earlier", ep))
			return false
		}
		if followed && (offset+written > 0 || s.badFollow.has(ep) || follows >= maxFollows) {
			// A download in progress is served from its first byte only;
			// a peer whose download failed us is not followed again in
			// this run (it may still hold blobs: it is not banned); and a
			// few downloaders per blob are enough.
			return false
		}
		if followed {
			follows++
		}
		n, err := s.fromPeer(ctx, ep, w, out, offset+written, followed)
		written += n
		if n > 0 {
			from = append(from, ep)
		}
		switch {
		case out.err != nil || ctx.Err() != nil:
			return true // our disk or our caller: not the peer's fault
		case err != nil:
			// A download followed can fail for its own source's sake (a
			// slow or failing mirror): the peer is not banned for it, and
			// still serves what it holds. Wrong bytes are banned by finish.
			if followed {
				s.badFollow.add(ep)
			} else {
				s.banned.add(ep)
			}
			s.Config.logger().Debug("LAN peer failed", "peer", ep.String(), "pkg", w.String(), "followed", followed, "err", err)
			errs = append(errs, fmt.Errorf("peer %s: %w", ep, err))
		}
		return offset+written == w.Size
	})
	if offset+written == w.Size && len(errs) > 0 { // logged only now: a failure that is returned is not logged
		s.Config.logger().Warn("fell back to another LAN peer", "pkg", w.String(), "failed", errors.Join(errs...).Error())
	}
	switch {
	case out.err != nil:
		return written, out.err
	case ctx.Err() != nil:
		return written, fmt.Errorf("%s from LAN peers: %w", w, ctx.Err())
	case err != nil:
		return written, fmt.Errorf("%s from LAN peers: %v: %w", w, err, fetch.ErrNotFound)
	case offset+written == w.Size:
		return written, s.finish(w, h, from)
	case answered == 0:
		return written, fmt.Errorf("%s: no LAN peer has it: %w", w, fetch.ErrNotFound)
	case written > 0:
		// Resume elsewhere: the Fetcher retries, and the next query skips
		// the peers that failed, then falls through to the mirrors.
		return written, fmt.Errorf("%s: every LAN peer failed (%v): %w", w, errors.Join(errs...), io.ErrUnexpectedEOF)
	}
	return written, fmt.Errorf("%s: every LAN peer failed (%v): %w", w, errors.Join(errs...), fetch.ErrNotFound)
}

// finish checks a blob hashed from its first byte and records where it
// came from.
func (s *Source) finish(w fetch.Want, h hash.Hash, from []netip.AddrPort) error {
	if h != nil {
		var got packages.Digest
		h.Sum(got[:0])
		if got != w.Digest {
			// Blame a peer only when it sent every byte. Otherwise the
			// others failed and are banned already; the last one gets a
			// fresh try alone, from the first byte.
			if len(from) == 1 {
				s.banned.add(from[0])
			}
			// Logged here: the Fetcher takes the error as "ask again" and
			// does not report it.
			s.Config.logger().Warn("LAN peer sent wrong bytes", "peer", fmt.Sprint(from), "pkg", w.String(), "banned", len(from) == 1)
			return &MismatchError{Peers: from, Err: &packages.DigestMismatchError{What: w.String(), Want: w.Digest, Got: got}}
		}
	}
	if len(from) == 0 {
		return nil
	}
	last := from[len(from)-1]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.origin == nil {
		s.origin = map[packages.Digest]netip.AddrPort{}
	}
	s.origin[w.Digest] = last
	return nil
}

// MismatchError says that LAN peers sent a blob's bytes wrong. It matches
// fetch.ErrRestart, so that the Fetcher discards them and asks this Source
// again (which skips those peers from now on), and the digest mismatch.
type MismatchError struct {
	Peers []netip.AddrPort
	Err   *packages.DigestMismatchError
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("peers %v: %v", e.Peers, e.Err)
}

// Unwrap returns the mismatch and fetch.ErrRestart.
func (e *MismatchError) Unwrap() []error { return []error{fetch.ErrRestart, e.Err} }

// fromPeer downloads w from offset from one peer, abandoning it when it
// stalls or trickles. It returns the bytes written.
//
// A followed peer (one still downloading the blob, or about to) goes only as
// fast as its own source: its first byte may take fetch.StartWait, and the
// whole is held to an eighth of MinRate.
func (s *Source) fromPeer(ctx context.Context, ep netip.AddrPort, w fetch.Want, out *watchWriter, offset int64, followed bool) (int64, error) {
	stall := s.stall()
	minRate := s.MinRate
	if minRate <= 0 {
		minRate = DefaultPeerMinRate
	}
	first := stall
	if followed {
		minRate = max(minRate/8, 1)
		first = s.StartWait
		if first <= 0 {
			first = fetch.StartWait
		}
		first += stall
	}
	remaining := w.Size - offset
	limit := first + time.Duration(min(float64(remaining)/float64(minRate), maxTransferSeconds)*float64(time.Second))
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pctx, cancelLimit := context.WithTimeoutCause(pctx, limit, &fetch.TimeoutError{After: limit})
	defer cancelLimit()
	watchdog := time.AfterFunc(first, func() { cancel(&fetch.StallError{After: stall}) })
	defer watchdog.Stop()
	out.tick = func() { watchdog.Reset(stall) }
	defer func() { out.tick = nil }()

	m := s.mirror(ep, "")
	want := fetch.Want{Digest: w.Digest, Size: w.Size, Path: "blobs/" + w.Digest.String(), Name: w.Name}
	n, err := m.Fetch(pctx, want, out, offset)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		err = context.Cause(pctx) // our watchdog or limit ended it
	}
	return n, err
}

// eachPeer queries for d and calls try with each peer that holds it, in
// answer order, until try returns true or the answers run out. It returns
// how many peers it called try with; an error means the query could not be
// sent.
//
// With follow, when no peer that holds d did, it asks again and calls try
// with the peers downloading d themselves that this host should take it
// from (followOrder): hosts that apply at the same moment then fetch each
// blob from the mirror once. The first query's window gives hosts started
// together the time to announce their downloads; the second looks at who
// has, after a short settle.
func (s *Source) eachPeer(ctx context.Context, d packages.Digest, follow bool, try func(ep netip.AddrPort, followed bool) bool) (int, error) {
	tried := 0
	if follow {
		if got := s.takePrepared(d); got != nil {
			n, done := s.tryDiscovered(got, try)
			if done || n == 0 {
				return n, nil
			}
			// Every peer it heard of failed: ask afresh, for the holders
			// it did not wait to hear (the failed ones are banned).
			tried = n
		}
	}
	targets, err := s.targets()
	if err != nil {
		return 0, err
	}
	// round queries once, tries the holders as they answer, and returns
	// the downloaders; done is true when try did.
	round := func(window time.Duration) (pending []reply, done bool, err error) {
		conn, err := s.conn(ctx)
		if err != nil {
			return nil, false, err
		}
		defer conn.Close()
		replies, err := startDiscovery(ctx, conn, targets, d, window)
		if err != nil {
			return nil, false, err
		}
		for r := range replies {
			if r.pending {
				pending = append(pending, r)
				continue
			}
			tried++
			if try(r.ep, false) {
				return nil, true, nil
			}
		}
		return pending, false, nil
	}
	_, done, err := round(s.Config.window())
	if err != nil || done || !follow || ctx.Err() != nil {
		return tried, err
	}
	pending, done, err := round(settle(s.Config.window()))
	if err != nil || done {
		return tried, err
	}
	for _, ep := range followOrder(s.key(), pending) {
		tried++
		if try(ep, true) {
			break
		}
	}
	return tried, nil
}

// tryDiscovered calls try with the holders of a blob, then with the
// downloaders to follow, until it returns true; it returns how many it
// called it with, and whether one did.
func (s *Source) tryDiscovered(got *discovery, try func(ep netip.AddrPort, followed bool) bool) (tried int, done bool) {
	for _, ep := range got.holders {
		tried++
		if try(ep, false) {
			return tried, true
		}
	}
	for _, ep := range followOrder(s.key(), got.pending) {
		tried++
		if try(ep, true) {
			return tried, true
		}
	}
	return tried, false
}

// takePrepared returns, once, what Prepare learnt of blob d.
func (s *Source) takePrepared(d packages.Digest) *discovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.prepared[d]
	delete(s.prepared, d)
	return got
}

// Prepare implements fetch.Preparer: it asks the LAN about every blob of
// wants at once, as eachPeer does about one, so that a batch pays one
// window instead of one per blob (a Fetcher downloads a few at a time:
// 200 blobs that nobody had took 50 windows). Queries for all of them go
// out together; answers are read for the window; then the blobs nobody
// holds are asked about again, after the settle, for downloaders to follow.
// Each blob's first Fetch uses what was learnt and does not wait again. A
// failure to ask leaves Fetch to ask on its own.
//
// It returns the blobs for which it found neither a holder nor a download
// to follow: this host fetches those itself, and its claims say so.
func (s *Source) Prepare(ctx context.Context, wants []fetch.Want) (unfound []packages.Digest) {
	log := s.Config.logger()
	digests := make([]packages.Digest, len(wants))
	for i, w := range wants {
		digests[i] = w.Digest
	}
	found, err := s.discoverAll(ctx, digests, s.Config.window(), 2*s.Config.window(), true)
	if err != nil {
		log.Debug("LAN queries not sent", "err", err)
		return digests
	}
	var unheld []packages.Digest
	for _, d := range digests {
		if found[d].holders == nil {
			unheld = append(unheld, d)
		}
	}
	if len(unheld) > 0 {
		again, err := s.discoverAll(ctx, unheld, settle(s.Config.window()), s.Config.window(), false)
		if err != nil {
			log.Debug("LAN queries not sent", "err", err)
			return digests
		}
		for _, d := range unheld {
			found[d].holders = again[d].holders // one may have finished meanwhile
			found[d].pending = again[d].pending
		}
	}
	for _, d := range digests {
		if got := found[d]; got.holders == nil && len(followOrder(s.key(), got.pending)) == 0 {
			unfound = append(unfound, d)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prepared == nil {
		s.prepared = map[packages.Digest]*discovery{}
	}
	maps.Copy(s.prepared, found)
	return unfound
}

// discoverAll sends a query for each of digests to every target from one
// socket and gathers, for the window (longer while answers keep coming, up
// to limit: startBatchDiscovery), each one's answers (at most MaxPeers
// each). With untilHeld it stops as soon as every digest has a holder: on
// a LAN that has them all, a batch waits no longer than its answers take
// (a blob whose holders all fail is asked about again on its own, and
// hears the others then). Every digest has an entry in the result.
func (s *Source) discoverAll(ctx context.Context, digests []packages.Digest, window, limit time.Duration, untilHeld bool) (map[packages.Digest]*discovery, error) {
	out := make(map[packages.Digest]*discovery, len(digests))
	for _, d := range digests {
		out[d] = &discovery{}
	}
	targets, err := s.targets()
	if err != nil {
		return nil, err
	}
	conn, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	replies, halt, sendErr, err := startBatchDiscovery(ctx, conn, targets, digests, window, limit)
	if err != nil {
		return nil, err
	}
	unheld := len(digests)
	for r := range replies {
		got := out[r.digest]
		if r.pending {
			got.pending = append(got.pending, r.reply)
			continue
		}
		if got.holders == nil {
			unheld--
		}
		got.holders = append(got.holders, r.ep)
		if untilHeld && unheld == 0 {
			halt() // the reader ends; what it took is read on
		}
	}
	if err := sendErr(); err != nil {
		return nil, err
	}
	return out, nil
}

// settle is the second query's window: answers on a LAN take well under a
// millisecond, so a fraction of the first window will do.
func settle(window time.Duration) time.Duration {
	return min(max(window/8, 10*time.Millisecond), 50*time.Millisecond)
}

// followOrder picks, among peers downloading a blob (or about to), those
// this host should take it from, best first, so that hosts that want a
// blob at the same moment get it from the mirror once:
//
//  1. those whose bytes are coming in (held > 0), most held first;
//  2. those that fetch it from a mirror themselves (IntentMirror);
//  3. those still deciding whose host key is lower than this host's,
//     lowest first.
//
// A host lower than every undecided downloader, with nobody to take from,
// goes to the mirror, and the others follow it. Nobody can wait on a host
// that waits on them: bytes coming in come from elsewhere, a host that
// fetches from a mirror waits on nobody, and an undecided host follows
// only lower keys, or hosts of the first two kinds. A key is one per host
// (HostKey), so that hosts on several subnets order themselves alike; with
// no key (0) a host follows only the first two kinds, and equal keys
// follow neither way.
func followOrder(me HostKey, pending []reply) []netip.AddrPort {
	var flowing, mirror, lower []reply
	for _, r := range pending {
		switch {
		case r.held > 0:
			flowing = append(flowing, r)
		case r.intent == fetch.IntentMirror:
			mirror = append(mirror, r)
		case r.intent == fetch.IntentUndecided && me != 0 && r.key != 0 && r.key < me:
			lower = append(lower, r)
		}
	}
	slices.SortStableFunc(flowing, func(a, b reply) int { return cmp.Compare(b.held, a.held) })
	byKey := func(a, b reply) int { return cmp.Compare(a.key, b.key) }
	slices.SortStableFunc(mirror, byKey)
	slices.SortStableFunc(lower, byKey)
	out := make([]netip.AddrPort, 0, len(pending))
	for _, r := range slices.Concat(flowing, mirror, lower) {
		out = append(out, r.ep)
	}
	return out
}

// key returns this host's key: Key, or InterfaceKey of its interfaces,
// looked up once.
func (s *Source) key() HostKey {
	if s.Key != 0 {
		return s.Key
	}
	s.keyOnce.Do(func() {
		if ifs, err := SystemInterfaces(); err == nil {
			s.ifaceKey = InterfaceKey(ifs, s.Config)
		}
	})
	return s.ifaceKey
}

func (s *Source) targets() ([]*net.UDPAddr, error) {
	if s.Targets != nil {
		return s.Targets()
	}
	ifs, err := SystemInterfaces()
	if err != nil {
		return nil, err
	}
	return BroadcastTargets(s.Config, ifs), nil
}

func (s *Source) conn(ctx context.Context) (net.PacketConn, error) {
	if s.Conn != nil {
		return s.Conn()
	}
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
}

func (s *Source) stall() time.Duration {
	if s.Stall <= 0 {
		return DefaultPeerStall
	}
	return s.Stall
}

// maxTransferSeconds caps a transfer's time limit (a week), so that no
// size and rate overflow it.
const maxTransferSeconds = 7 * 24 * 3600

// maxFollows bounds the downloaders one Fetch follows for a blob.
const maxFollows = 3

// client returns Client, or a shared default one for LAN peers.
func (s *Source) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	s.once.Do(func() {
		s.dflt = &http.Client{Transport: &http.Transport{
			Proxy:                  nil, // peers are on the LAN: never through a proxy
			DialContext:            (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			ResponseHeaderTimeout:  s.stall(),
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        30 * time.Second,
			DisableCompression:     true,
		}}
	})
	return s.dflt
}

// mirror returns a fetch.Mirror for a peer's HTTP endpoint and a base path
// under it ("" or "repos/default/"): it brings the range, size and HTML
// checks of mirror downloads.
func (s *Source) mirror(ep netip.AddrPort, base string) *fetch.Mirror {
	u := &url.URL{Scheme: "http", Host: ep.String(), Path: "/" + base}
	return &fetch.Mirror{Base: u, Client: s.client(), StallTimeout: s.stall()}
}

// watchWriter writes to the Fetcher's part, hashing when asked, feeding the
// per-peer stall watchdog, and remembering a write error (a failure of our
// disk, never blamed on a peer).
type watchWriter struct {
	w    io.Writer
	h    hash.Hash // nil when not hashing
	tick func()
	err  error
}

func (ww *watchWriter) Write(b []byte) (int, error) {
	n, err := ww.w.Write(b)
	if ww.h != nil {
		ww.h.Write(b[:n])
	}
	if n > 0 && ww.tick != nil {
		ww.tick()
	}
	if err != nil {
		ww.err = err
	}
	return n, err
}

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// MaxPeers bounds the holders ("H") one query takes into account: a LAN
// flooded with answers (or a liar answering from many addresses) costs at
// most this many attempts per blob. maxPending bounds the downloaders
// ("P") apart, so that many hosts applying at once do not crowd out a
// holder, nor hide the lowest of them.
const (
	MaxPeers   = 8
	maxPending = 64
)

// Discover sends a query for d from conn to every target and collects the
// peers that answer within window: their HTTP endpoints (the answer's
// sender address with the port the answer names), in answer order, without
// repeats, at most MaxPeers. Answers for another digest, malformed ones,
// and those not sent from a target's UDP port are ignored. It returns no
// endpoint and no error when nobody answered; an error means that no query
// could be sent. conn stays open; its read deadline is changed.
func Discover(ctx context.Context, conn net.PacketConn, targets []*net.UDPAddr, d packages.Digest, window time.Duration) ([]netip.AddrPort, error) {
	peers, err := startDiscovery(ctx, conn, targets, d, window)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for r := range peers {
		if !r.pending {
			out = append(out, r.ep)
		}
	}
	return out, nil
}

// reply is one peer's answer: it holds the blob, or (pending) is
// downloading it, or about to, as intent says, and holds held bytes that
// came in just now.
type reply struct {
	ep      netip.AddrPort
	pending bool
	held    int64
	intent  fetch.Intent
	key     HostKey
}

// startDiscovery sends the queries and returns a channel that delivers the
// answering peers as they come, closed when the window ends, MaxPeers
// answered, ctx is done or conn is closed. The channel is buffered for
// MaxPeers, so the reader never blocks on a slow consumer and always ends
// with the window.
func startDiscovery(ctx context.Context, conn net.PacketConn, targets []*net.UDPAddr, d packages.Digest, window time.Duration) (<-chan reply, error) {
	if len(targets) == 0 {
		return nil, errors.New("no address to send LAN queries to (no up, broadcast-capable interface)")
	}
	if err := conn.SetReadDeadline(time.Now().Add(window)); err != nil {
		return nil, err
	}
	q := Query(d)
	ports := map[uint16]bool{}
	var errs []error
	for _, t := range targets {
		if _, err := conn.WriteTo(q, t); err != nil {
			errs = append(errs, fmt.Errorf("query %s: %w", t, err))
			continue
		}
		ports[uint16(t.Port)] = true
	}
	if len(ports) == 0 {
		return nil, errors.Join(errs...)
	}
	out := make(chan reply, MaxPeers+maxPending)
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	go func() {
		defer close(out)
		defer stop()
		buf := make([]byte, maxPendingLen+1) // one byte more: a longer datagram is malformed
		var t taker
		for t.holders < MaxPeers {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return // the window closed, ctx is done, or conn was closed
			}
			if r, ok := answerFrom(buf[:n], addr, d, ports); ok && t.take(r) {
				out <- r // never blocks: the channel holds every answer taken
			}
		}
	}()
	return out, nil
}

// taker decides which answers to the query for one digest are taken: each
// peer once, a downloader once per host (whatever port it answers from),
// at most MaxPeers holders and maxPending downloaders.
type taker struct {
	seen             map[netip.AddrPort]bool
	holders, pending int
}

func (t *taker) take(r reply) bool {
	key := r.ep
	if r.pending {
		key = netip.AddrPortFrom(r.ep.Addr(), 0)
	}
	if t.seen[key] || r.pending && t.pending >= maxPending || !r.pending && t.holders >= MaxPeers {
		return false
	}
	if t.seen == nil {
		t.seen = map[netip.AddrPort]bool{}
	}
	t.seen[key] = true
	if r.pending {
		t.pending++
	} else {
		t.holders++
	}
	return true
}

// batchReply is a reply to one of a batch of queries.
type batchReply struct {
	reply
	digest packages.Digest
}

// startBatchDiscovery is startDiscovery for several digests at once: a
// query for each goes to every target, and the channel delivers the
// answers to any of them, each peer once per digest, at most MaxPeers
// holders and maxPending downloaders per digest, until the window ends.
// The queries go out from a goroutine, paced (batchPace), while the
// answers are read: neither side's socket buffer has to hold a whole
// batch. The window runs from the last query sent, and while answers keep
// coming after it (a daemon answers a batch one query at a time) each
// extends it by a settle (see settle), up to limit after the last query.
// halt ends the reading (and the sending) early; the channel is closed
// soon after.
//
// sendErr, once the channel is closed, says why no query at all went out.
func startBatchDiscovery(ctx context.Context, conn net.PacketConn, targets []*net.UDPAddr, digests []packages.Digest, window, limit time.Duration) (replies <-chan batchReply, halt func(), sendErr func() error, err error) {
	if len(targets) == 0 {
		return nil, nil, nil, errors.New("no address to send LAN queries to (no up, broadcast-capable interface)")
	}
	growReadBuffer(conn)
	// Until the last query is out, the reader waits as long as sending may
	// take, and the sender then sets the window from its last query.
	sending := time.Duration(2*len(digests)/batchPace+10) * time.Millisecond
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(sending + window)); err != nil {
		return nil, nil, nil, err
	}
	var (
		mu       sync.Mutex
		halted   bool
		sentAll  bool      // the sender is done
		lastSent time.Time // when it was
		deadline time.Time // the reader's, once sentAll
		failed   error     // why nothing went out
	)
	quiet := settle(window)
	halt = func() {
		mu.Lock()
		defer mu.Unlock()
		halted = true
		conn.SetReadDeadline(time.Now())
	}
	wanted := make(map[packages.Digest]*taker, len(digests))
	for _, d := range digests {
		wanted[d] = &taker{}
	}
	ports := map[uint16]bool{}
	for _, t := range targets {
		ports[uint16(t.Port)] = true
	}
	out := make(chan batchReply, 256)
	stop := context.AfterFunc(ctx, halt) // under mu, as every deadline set
	go func() {
		defer close(out)
		defer stop()
		buf := make([]byte, maxPendingLen+1)
		for {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				mu.Lock()
				now := time.Now()
				more := !halted && ctx.Err() == nil && isTimeout(err)
				switch {
				case !more:
				case !sentAll && now.Before(start.Add(sending+limit)):
					conn.SetReadDeadline(now.Add(window)) // a slow sender: wait for its last query
				case sentAll && now.Before(deadline):
					conn.SetReadDeadline(deadline) // set by the sender as this one expired
				default:
					more = false
				}
				mu.Unlock()
				if more {
					continue
				}
				return // the window closed, ctx is done, or conn was closed
			}
			r, d, ok := answerFromAny(buf[:n], addr, ports)
			if t := wanted[d]; !ok || t == nil || !t.take(r) {
				continue
			}
			mu.Lock()
			if sentAll && !halted {
				next := time.Now().Add(quiet)
				if end := lastSent.Add(limit); next.After(end) {
					next = end
				}
				if next.After(deadline) {
					deadline = next
					conn.SetReadDeadline(next) // answers still coming: a while longer
				}
			}
			mu.Unlock()
			out <- batchReply{reply: r, digest: d}
		}
	}()
	go func() {
		sent := 0
		var errs []error
		for i, d := range digests {
			if i > 0 && i%batchPace == 0 {
				mu.Lock()
				stop := halted || ctx.Err() != nil
				sentAll = sentAll || stop
				mu.Unlock()
				if stop {
					return
				}
				time.Sleep(time.Millisecond)
			}
			q := Query(d)
			for _, t := range targets {
				_, err := conn.WriteTo(q, t)
				if errors.Is(err, net.ErrClosed) {
					mu.Lock()
					sentAll = true
					mu.Unlock()
					return
				}
				if err == nil {
					sent++
				} else if len(errs) < len(targets) {
					errs = append(errs, fmt.Errorf("query %s: %w", t, err))
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		sentAll, lastSent = true, time.Now()
		switch {
		case halted:
		case sent == 0:
			failed = errors.Join(errs...)
			conn.SetReadDeadline(time.Now()) // nothing went out: nothing will come
		default:
			deadline = lastSent.Add(window) // the window runs from the last query
			conn.SetReadDeadline(deadline)
		}
	}()
	sendErr = func() error {
		mu.Lock()
		defer mu.Unlock()
		return failed
	}
	return out, halt, sendErr, nil
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// batchPace is how many queries a batch sends to each target before it
// pauses a millisecond: a daemon answers them one at a time, and its
// socket buffer holds a few hundred. 2,000 blobs take about 30 ms to ask.
const batchPace = 64

// growReadBuffer asks for a socket buffer that holds the answers to a
// batch: 4 MiB, past the system's limit when the process may (as root),
// else as much as the limit allows.
func growReadBuffer(conn net.PacketConn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
	})
}

// answerFromAny is answerFrom for an answer about any digest: it returns
// the digest too.
func answerFromAny(b []byte, from net.Addr, ports map[uint16]bool) (reply, packages.Digest, bool) {
	r, ok := ParseReply(b)
	if !ok {
		return reply{}, packages.Digest{}, false
	}
	got, ok := answerFrom(b, from, r.Digest, ports)
	return got, r.Digest, ok
}

// answerFrom checks an answer to a query for d and returns it with the HTTP
// endpoint it names: the sender's IPv4 address and the answer's port. The
// sender must answer from one of the ports queried (a peer answers from
// its discovery socket).
func answerFrom(b []byte, from net.Addr, d packages.Digest, ports map[uint16]bool) (reply, bool) {
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return reply{}, false
	}
	src := ua.AddrPort()
	ip := src.Addr().Unmap()
	if !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || !ports[src.Port()] {
		return reply{}, false
	}
	r, ok := ParseReply(b)
	if !ok || r.Digest != d {
		return reply{}, false
	}
	return reply{ep: netip.AddrPortFrom(ip, uint16(r.Port)), pending: r.Pending, held: r.Held, intent: r.Intent, key: r.Key}, true
}

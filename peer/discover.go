package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/packets-dev/packets/packages"
)

// MaxPeers bounds the answers one query takes into account: a LAN flooded
// with answers (or a liar answering from many addresses) costs at most this
// many attempts per blob.
const MaxPeers = 8

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
// downloading it and holds held bytes that came in just now.
type reply struct {
	ep      netip.AddrPort
	pending bool
	held    int64
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
	out := make(chan reply, MaxPeers)
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	go func() {
		defer close(out)
		defer stop()
		buf := make([]byte, maxPendingLen+1) // one byte more: a longer datagram is malformed
		seen := map[netip.AddrPort]bool{}
		for len(seen) < MaxPeers {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return // the window closed, ctx is done, or conn was closed
			}
			r, ok := answerFrom(buf[:n], addr, d, ports)
			if !ok || seen[r.ep] {
				continue
			}
			seen[r.ep] = true
			out <- r
		}
	}()
	return out, nil
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
	return reply{ep: netip.AddrPortFrom(ip, uint16(r.Port)), pending: r.Pending, held: r.Held}, true
}

package peer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/packets-dev/packets/packages"
)

// answer is the UDP side of Serve: it reads datagrams until ctx is done and
// answers the queries it should.
func (s *Server) answer(ctx context.Context, conn net.PacketConn, httpPort int) error {
	lim := newLimiter(s.QueryRate, s.QueryBurst, time.Now)
	pktinfo := enablePktinfo(conn)
	if !pktinfo {
		s.logger().Warn("cannot learn the receiving interface of a datagram: checking senders against every served subnet")
	}
	buf := make([]byte, 2*QueryLen) // a longer datagram is cut short, and still malformed
	oob := make([]byte, oobSize)
	for {
		n, ifindex, src, err := readDatagram(conn, pktinfo, buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() || errors.Is(err, syscall.ECONNREFUSED) {
				continue // a deadline set while not stopping; an ICMP error for an earlier answer
			}
			return err
		}
		s.handle(conn, buf[:n], ifindex, src, httpPort, lim)
	}
}

// handle decides about one datagram and answers it if it is a query from a
// neighbour for something this peer holds. The checks run cheapest and most
// telling first; the rate limit comes before parsing, so that garbage costs
// its sender tokens too.
func (s *Server) handle(conn net.PacketConn, b []byte, ifindex int, src netip.AddrPort, httpPort int, lim *limiter) {
	c := &s.stats
	c.datagrams.Add(1)
	log := s.logger()
	ip := src.Addr().Unmap()
	ifs, err := s.ifaces.get(ifindex)
	if err != nil {
		log.Warn("cannot list network interfaces: ignoring a query", "err", err)
		return
	}
	switch decide(ifs, s.Config, ifindex, ip) {
	case fromSelf:
		c.self.Add(1)
		return
	case fromForeign:
		c.foreign.Add(1)
		log.Debug("ignored a datagram from outside the subnet", "peer", src.String(), "ifindex", ifindex)
		return
	}
	if !lim.allow(ip) {
		c.limited.Add(1)
		log.Debug("rate-limited a query", "peer", src.String())
		return
	}
	d, ok := ParseQuery(b)
	if !ok {
		c.malformed.Add(1)
		log.Debug("ignored a malformed datagram", "peer", src.String(), "bytes", len(b))
		return
	}
	ans := Answer(d, httpPort)
	if !s.holds(d) {
		prog, ok := s.Cache.InProgress(d)
		if !ok {
			c.missing.Add(1)
			return
		}
		// Held counts only while bytes are coming in: a download that has
		// not started, or has stopped, offers no head start.
		held := prog.Held
		if time.Since(prog.Modified) > flowing {
			held = 0
		}
		c.pending.Add(1)
		ans = Pending(d, httpPort, held, prog.Intent, s.key())
	}
	if len(ans) > len(b) {
		return // never larger than the query: no amplification (cannot happen)
	}
	// Counted before the send, so that a client holding the answer always
	// sees it in Stats.
	c.answered.Add(1)
	if _, err := conn.WriteTo(ans, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, src.Port()))); err != nil {
		c.unsent.Add(1)
		log.Debug("answer not sent", "peer", src.String(), "err", err)
		return
	}
	log.Debug("answered a query", "peer", src.String(), "digest", d.Short())
}

// flowing is how recently a download must have written to count as
// bringing bytes in.
const flowing = time.Second

// key returns this host's key for P answers: Key, or InterfaceKey of the
// interfaces (0 when they cannot be read).
func (s *Server) key() HostKey {
	if s.Key != 0 {
		return s.Key
	}
	ifs, err := s.ifaces.get(0)
	if err != nil {
		return 0
	}
	return InterfaceKey(ifs, s.Config)
}

// holds reports whether the server has blob d, or serves the repository d
// is the key of.
func (s *Server) holds(d packages.Digest) bool {
	path := s.Cache.Path(d)
	if name, ok := s.repoKey[d]; ok {
		path = filepath.Join(s.repoDirs[name], releaseFile)
	}
	st, err := os.Lstat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() > 0
}

// verdict is the subnet rule's decision about a sender.
type verdict int

const (
	fromNeighbour verdict = iota // answer
	fromSelf                     // our own query, looped back
	fromForeign                  // outside the subnet, or on an interface not served
)

// decide applies the subnet rule. A sender whose address is one of this
// host's non-loopback addresses is ourselves (the client broadcasts only
// from those). Otherwise the sender must be inside a subnet of the
// interface the datagram arrived on (ifindex, from IP_PKTINFO), and that
// interface must be one c allows. When the receiving interface is unknown
// (ifindex 0: a socket without IP_PKTINFO), any allowed interface's subnet
// will do.
func decide(ifs []Interface, c Config, ifindex int, src netip.Addr) verdict {
	if !src.Is4() {
		return fromForeign
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		for _, p := range ifi.Nets {
			if p.Addr() == src {
				return fromSelf
			}
		}
	}
	for _, ifi := range ifs {
		if ifindex != 0 && ifi.Index != ifindex || !c.allows(ifi.Name) {
			continue
		}
		for _, p := range ifi.Nets {
			if p.Masked().Contains(src) {
				return fromNeighbour
			}
		}
	}
	return fromForeign
}

// ifaceTable caches the interface list, re-read at most every ifaceRefresh
// and at once (rate-limited to once per ifaceRetry) when asked about an
// interface it does not know (one that just appeared).
type ifaceTable struct {
	list func() ([]Interface, error)
	mu   sync.Mutex
	at   time.Time
	ifs  []Interface
}

const (
	ifaceRefresh = 5 * time.Second
	ifaceRetry   = 250 * time.Millisecond
)

func (t *ifaceTable) get(ifindex int) ([]Interface, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	age := time.Since(t.at)
	stale := t.at.IsZero() || age > ifaceRefresh
	if !stale && ifindex != 0 && age > ifaceRetry && !hasIndex(t.ifs, ifindex) {
		stale = true
	}
	if stale {
		ifs, err := t.list()
		if err != nil {
			return nil, err
		}
		t.ifs, t.at = ifs, time.Now()
	}
	return t.ifs, nil
}

func hasIndex(ifs []Interface, index int) bool {
	for _, ifi := range ifs {
		if ifi.Index == index {
			return true
		}
	}
	return false
}

package peer

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// FuzzParseQuery: the parser never panics, and whatever it accepts is
// exactly the query it would send itself.
func FuzzParseQuery(f *testing.F) {
	f.Add(Query(digestA))
	f.Add([]byte("Q:" + hexA))
	f.Add([]byte(strings.Repeat(" ", QueryLen)))
	f.Add(Answer(digestA, 9123))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := ParseQuery(b)
		if ok && !bytes.Equal(Query(d), b) {
			t.Fatalf("accepted %q, which is not Query(%s)", b, d)
		}
	})
}

// FuzzParseAnswer: the parser never panics, and whatever it accepts is
// exactly the answer a server would send, no longer than a query.
func FuzzParseAnswer(f *testing.F) {
	f.Add(Answer(digestA, 9123))
	f.Add(Answer(digestA, 1))
	f.Add([]byte("H:" + hexA + ":0"))
	f.Add([]byte("H:" + hexA + ":99999"))
	f.Add(Query(digestA))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, port, ok := ParseAnswer(b)
		if !ok {
			return
		}
		if port < 1 || port > 65535 || !bytes.Equal(Answer(d, port), b) || len(b) > QueryLen {
			t.Fatalf("accepted %q as %s port %d", b, d, port)
		}
	})
}

// FuzzParseReply: the parser never panics, and whatever it accepts is
// exactly the H or P answer a server would send, no longer than a query.
func FuzzParseReply(f *testing.F) {
	f.Add(Answer(digestA, 9123))
	f.Add(Pending(digestA, 9123, 0, fetch.IntentUndecided, 0x0a000001))
	f.Add(Pending(digestA, 65535, 1<<62, fetch.IntentMirror, 0))
	f.Add(Pending(digestA, 9123, 5, fetch.IntentPeer, ^HostKey(0)))
	f.Add([]byte("P:" + hexA + ":9123:007:-:000000000a000001"))
	f.Add([]byte("P:" + hexA + ":9123:0:x:000000000a000001"))
	f.Add([]byte("P:" + hexA + ":9123:0:-:000000000A000001"))
	f.Add([]byte("P:" + hexA + ":9123:0:-:a000001"))
	f.Add([]byte("P:" + hexA + ":9123:99999999999999999999:-:000000000a000001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := ParseReply(b)
		if !ok {
			return
		}
		again := Answer(r.Digest, r.Port)
		if r.Pending {
			again = Pending(r.Digest, r.Port, r.Held, r.Intent, r.Key)
		}
		if r.Port < 1 || r.Port > 65535 || r.Held < 0 || !bytes.Equal(again, b) || len(b) > QueryLen {
			t.Fatalf("accepted %q as %+v", b, r)
		}
	})
}

// recordConn is a net.PacketConn that records what is written to it.
type recordConn struct {
	net.PacketConn
	sent [][]byte
}

func (c *recordConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.sent = append(c.sent, append([]byte(nil), b...))
	return len(b), nil
}

// FuzzHandle: whatever a neighbour sends, the server answers at most once,
// never with more bytes than it received, and only a well-formed query
// for a blob it holds.
func FuzzHandle(f *testing.F) {
	blob := []byte("held blob")
	s := &Server{Cache: newCache(f, blob), QueryRate: 1e9, QueryBurst: 1 << 30, Interfaces: loIfaces(f)}
	if err := s.init(); err != nil {
		f.Fatal(err)
	}
	lim := newLimiter(s.QueryRate, s.QueryBurst, time.Now)
	src := netip.MustParseAddrPort("127.0.0.1:4000")
	held := packages.SumBytes(blob)
	f.Add(Query(held))
	f.Add(Query(digestA))
	f.Add([]byte("Q:" + held.String()))
	f.Add(Answer(held, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		conn := &recordConn{}
		s.handle(conn, b, loopback(t), src, 9123, lim)
		switch {
		case len(conn.sent) > 1:
			t.Fatalf("answered %d times", len(conn.sent))
		case len(conn.sent) == 1 && (len(conn.sent[0]) > len(b) || !bytes.Equal(b, Query(held))):
			t.Fatalf("answered %q to %q", conn.sent[0], b)
		case len(conn.sent) == 0 && bytes.Equal(b, Query(held)):
			t.Fatal("did not answer a query for a held blob")
		}
	})
}

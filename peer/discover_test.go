package peer

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// responder is a fake peer's discovery socket: it answers every query
// with the datagrams reply returns, in order.
func responder(t testing.TB, reply func(d packages.Digest, from *net.UDPAddr) [][]byte) *net.UDPAddr {
	t.Helper()
	conn := listenUDP(t, "127.0.0.1:0")
	go func() {
		buf := make([]byte, 2*QueryLen)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return // closed by the test's cleanup
			}
			d, ok := ParseQuery(buf[:n])
			if !ok {
				continue
			}
			for _, b := range reply(d, from) {
				conn.WriteToUDP(b, from)
			}
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

// answersFor returns a responder reply naming the given HTTP ports.
func answersFor(ports ...uint16) func(packages.Digest, *net.UDPAddr) [][]byte {
	return func(d packages.Digest, _ *net.UDPAddr) [][]byte {
		var out [][]byte
		for _, p := range ports {
			out = append(out, Answer(d, int(p)))
		}
		return out
	}
}

func TestDiscover(t *testing.T) {
	blob, w := testBlob("x", 100, 1)
	_, other := testBlob("y", 100, 2)
	s1 := serve(t, &Server{Cache: newCache(t, blob)})
	s2 := serve(t, &Server{Cache: newCache(t, blob)})
	empty := serve(t, &Server{Cache: newCache(t)})
	stray := listenUDP(t, "127.0.0.1:0")
	liar := responder(t, func(d packages.Digest, from *net.UDPAddr) [][]byte {
		// From a port not queried: ignored, even though well-formed.
		stray.WriteToUDP(Answer(d, 7), from)
		return [][]byte{
			Answer(other.Digest, 1111),       // another blob
			[]byte("H:" + d.String() + ":0"), // malformed port
			Query(d),                         // not an answer
			Answer(d, 2222),                  // valid
			Answer(d, 2222),                  // a repeat
		}
	})
	conn := listenUDP(t, "127.0.0.1:0")
	targets := []*net.UDPAddr{s1.udp, empty.udp, s2.udp, liar}

	start := time.Now()
	got, err := Discover(t.Context(), conn, targets, w.Digest, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("returned after %s, before the window closed", took)
	}
	slices.SortFunc(got, netip.AddrPort.Compare)
	want := []netip.AddrPort{s1.http, s2.http, netip.MustParseAddrPort("127.0.0.1:2222")}
	slices.SortFunc(want, netip.AddrPort.Compare)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
	if st := empty.Stats(); st.Missing != 1 || st.Answered != 0 {
		t.Errorf("the server without the blob: %+v", st)
	}
}

func TestDiscoverBounds(t *testing.T) {
	_, w := testBlob("x", 100, 1)
	t.Run("nobody answers", func(t *testing.T) {
		silent := responder(t, func(packages.Digest, *net.UDPAddr) [][]byte { return nil })
		got, err := Discover(t.Context(), listenUDP(t, "127.0.0.1:0"), []*net.UDPAddr{silent}, w.Digest, 50*time.Millisecond)
		if err != nil || len(got) != 0 {
			t.Errorf("Discover = %v, %v; want nothing", got, err)
		}
	})
	t.Run("a flood stops at MaxPeers", func(t *testing.T) {
		var ports []uint16
		for p := range 3 * MaxPeers {
			ports = append(ports, uint16(3000+p))
		}
		flood := responder(t, answersFor(ports...))
		start := time.Now()
		got, err := Discover(t.Context(), listenUDP(t, "127.0.0.1:0"), []*net.UDPAddr{flood}, w.Digest, time.Minute)
		if err != nil || len(got) != MaxPeers {
			t.Errorf("Discover = %d peers, %v; want %d", len(got), err, MaxPeers)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("took %s: it waited for the window", took)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		silent := responder(t, func(packages.Digest, *net.UDPAddr) [][]byte { return nil })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := Discover(ctx, listenUDP(t, "127.0.0.1:0"), []*net.UDPAddr{silent}, w.Digest, time.Minute)
		if err != nil || len(got) != 0 {
			t.Errorf("Discover = %v, %v; want nothing", got, err)
		}
	})
	t.Run("no targets", func(t *testing.T) {
		if _, err := Discover(t.Context(), listenUDP(t, "127.0.0.1:0"), nil, w.Digest, time.Minute); err == nil {
			t.Error("no error without targets")
		}
	})
}

func TestBroadcastTargets(t *testing.T) {
	p := netip.MustParsePrefix
	up := net.FlagUp | net.FlagBroadcast
	ifs := []Interface{
		{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Nets: []netip.Prefix{p("127.0.0.1/8")}},
		{Index: 2, Name: "eth0", Flags: up, Nets: []netip.Prefix{p("10.0.0.7/24"), p("172.16.5.1/12")}},
		{Index: 3, Name: "eth1", Flags: net.FlagBroadcast, Nets: []netip.Prefix{p("10.1.0.7/24")}}, // down
		{Index: 4, Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint, Nets: []netip.Prefix{p("10.2.0.7/24")}},
		{Index: 5, Name: "eth2", Flags: up, Nets: []netip.Prefix{p("10.3.0.1/31"), p("10.4.0.1/32"), p("10.5.0.9/30")}},
		{Index: 6, Name: "br0", Flags: up, Nets: []netip.Prefix{p("10.0.0.8/24")}}, // same subnet as eth0
	}
	tests := []struct {
		name  string
		allow []string
		want  []string
	}{
		{"all", nil, []string{"10.0.0.255:1333", "172.31.255.255:1333", "10.5.0.11:1333"}},
		{"eth2 only", []string{"eth2"}, []string{"10.5.0.11:1333"}},
		{"loopback never", []string{"lo"}, nil},
		{"br0", []string{"br0"}, []string{"10.0.0.255:1333"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range BroadcastTargets(Config{Interfaces: tt.allow}, ifs) {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("BroadcastTargets (-want +got):\n%s", diff)
			}
		})
	}
}

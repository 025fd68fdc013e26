package peer

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestServerAnswers sends datagrams to a real server on 127.0.0.1 and
// checks what it answered and how it counted the rest. After the
// datagrams under test, a query from 127.0.0.2 that must be answered acts
// as a barrier: the server reads one datagram at a time, so once the
// barrier's answer is back, every earlier datagram was decided.
func TestServerAnswers(t *testing.T) {
	held, wHeld := testBlob("held", 300, 1)
	_, wMissing := testBlob("missing", 300, 2)
	q := Query(wHeld.Digest)
	tests := []struct {
		name    string
		nets    []string    // loopback's prefixes; default 127.0.0.1/8
		others  []Interface // further (fake) interfaces
		burst   int
		send    [][]byte
		answers int // answers expected on the sender's socket
		want    Stats
	}{
		{name: "held", send: [][]byte{q}, answers: 1, want: Stats{Answered: 1}},
		{name: "missing", send: [][]byte{Query(wMissing.Digest)}, want: Stats{Missing: 1}},
		{name: "malformed", send: [][]byte{
			{}, []byte("Q:" + wHeld.Digest.String()), append(q, ' '), q[:QueryLen-1],
			[]byte(strings.ToUpper(string(q))), Answer(wHeld.Digest, 80), make([]byte, 2000),
		}, want: Stats{Malformed: 7}},
		{name: "outside the subnet", nets: []string{"10.9.9.1/24", "127.0.0.2/32"},
			send: [][]byte{q}, want: Stats{Foreign: 1}},
		{name: "our own query", others: []Interface{{Index: 999, Name: "eth0",
			Flags: net.FlagUp | net.FlagBroadcast, Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}},
			send: [][]byte{q}, want: Stats{Self: 1}},
		{name: "rate limit", burst: 2, send: [][]byte{q, q, q, q, q},
			answers: 2, want: Stats{Answered: 2, Limited: 3}},
		{name: "limit before parsing", burst: 2, send: [][]byte{[]byte("junk"), []byte("junk"), q},
			want: Stats{Malformed: 2, Limited: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := loIfaces(t, tt.nets...)
			s := serve(t, &Server{
				Cache:      newCache(t, held),
				QueryBurst: tt.burst,
				QueryRate:  1, // a token a second: none comes back while the test runs
				Interfaces: func() ([]Interface, error) {
					ifs, _ := lo()
					return append(ifs, tt.others...), nil
				},
			})
			sender := listenUDP(t, "127.0.0.1:0")
			for _, b := range tt.send {
				if _, err := sender.WriteToUDP(b, s.udp); err != nil {
					t.Fatal(err)
				}
			}
			barrier := listenUDP(t, "127.0.0.2:0")
			if got := exchange(t, barrier, s.udp, q); string(got) != string(Answer(wHeld.Digest, int(s.http.Port()))) {
				t.Fatalf("barrier answer %q", got)
			}
			tt.want.Datagrams = int64(len(tt.send)) + 1
			tt.want.Answered++ // the barrier
			if diff := cmp.Diff(tt.want, s.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			for range tt.answers {
				got := receive(t, sender)
				if want := Answer(wHeld.Digest, int(s.http.Port())); string(got) != string(want) {
					t.Errorf("answer %q, want %q", got, want)
				}
			}
		})
	}
}

func TestDecide(t *testing.T) {
	p := netip.MustParsePrefix
	ifs := []Interface{
		{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Nets: []netip.Prefix{p("127.0.0.1/8")}},
		{Index: 2, Name: "eth0", Flags: net.FlagUp | net.FlagBroadcast, Nets: []netip.Prefix{p("10.0.0.7/24")}},
		{Index: 3, Name: "wlan0", Flags: net.FlagUp | net.FlagBroadcast, Nets: []netip.Prefix{p("192.168.1.20/24"), p("172.16.0.1/16")}},
	}
	tests := []struct {
		name    string
		allow   []string
		ifindex int
		src     string
		want    verdict
	}{
		{"neighbour on eth0", nil, 2, "10.0.0.9", fromNeighbour},
		{"neighbour in a second subnet", nil, 3, "172.16.4.4", fromNeighbour},
		{"our own address", nil, 2, "10.0.0.7", fromSelf},
		{"our address on another interface", nil, 2, "192.168.1.20", fromSelf},
		{"other subnet's host on eth0", nil, 2, "192.168.1.9", fromForeign},
		{"routed from afar", nil, 2, "8.8.8.8", fromForeign},
		{"loopback is local, not self", nil, 1, "127.0.0.1", fromNeighbour},
		{"unknown interface", nil, 42, "10.0.0.9", fromForeign},
		{"interface not served", []string{"wlan0"}, 2, "10.0.0.9", fromForeign},
		{"interface served", []string{"wlan0"}, 3, "192.168.1.9", fromNeighbour},
		{"no pktinfo: any served subnet", nil, 0, "192.168.1.9", fromNeighbour},
		{"no pktinfo: unserved subnet", []string{"eth0"}, 0, "192.168.1.9", fromForeign},
		{"IPv6", nil, 2, "fe80::1", fromForeign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(ifs, Config{Interfaces: tt.allow}, tt.ifindex, netip.MustParseAddr(tt.src))
			if got != tt.want {
				t.Errorf("decide = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAllowConn(t *testing.T) {
	p := netip.MustParsePrefix
	ifs := []Interface{
		{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback, Nets: []netip.Prefix{p("127.0.0.1/8")}},
		{Index: 2, Name: "eth0", Flags: net.FlagUp | net.FlagBroadcast, Nets: []netip.Prefix{p("10.0.0.7/24")}},
	}
	tests := []struct {
		name          string
		allow         []string
		local, remote string
		want          bool
	}{
		{"neighbour", nil, "10.0.0.7", "10.0.0.9", true},
		{"from afar", nil, "10.0.0.7", "10.1.0.9", false},
		{"loopback", nil, "127.0.0.1", "127.0.0.1", true},
		{"other loopback address", nil, "127.0.0.2", "127.0.0.1", true},
		{"not our address", nil, "10.0.0.8", "10.0.0.9", false},
		{"interface not served", []string{"lo"}, "10.0.0.7", "10.0.0.9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allowConn(ifs, Config{Interfaces: tt.allow}, netip.MustParseAddr(tt.local), netip.MustParseAddr(tt.remote))
			if got != tt.want {
				t.Errorf("allowConn = %v, want %v", got, tt.want)
			}
		})
	}
}

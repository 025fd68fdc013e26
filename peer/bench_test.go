package peer

import (
	"net"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
)

// BenchmarkFetchLoopback fetches an 8 MiB blob through the Fetcher from a
// peer and from a mirror, both on 127.0.0.1, into fresh caches (the LAN
// figures come from BenchmarkNetnsTransfer, -tags netns).
func BenchmarkFetchLoopback(b *testing.B) {
	blob, w := testBlob("big", 8<<20, 7)
	m := newMirror(b, map[string][]byte{"/" + w.Path: blob})
	s := serve(b, &Server{Cache: newCache(b, blob)})
	for _, tt := range []struct {
		name string
		src  fetch.Source
	}{
		{"peer", &Source{Conn: loopConn, Targets: unicast(s.udp)}},
		{"mirror", m.source(b)},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(w.Size)
			for b.Loop() {
				f := &fetch.Fetcher{Cache: &fetch.Cache{Dir: b.TempDir()}, Sources: []fetch.Source{tt.src}}
				if _, err := f.FetchAll(b.Context(), []fetch.Want{w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiscoverLoopback measures a query and its answer on
// 127.0.0.1: the time to the first answer, which is when a fetch starts.
func BenchmarkDiscoverLoopback(b *testing.B) {
	blob, w := testBlob("x", 1000, 7)
	s := serve(b, &Server{Cache: newCache(b, blob), QueryRate: 1e9, QueryBurst: 1 << 30})
	for b.Loop() {
		conn, err := loopConn()
		if err != nil {
			b.Fatal(err)
		}
		peers, err := startDiscovery(b.Context(), conn, unicastAddrs(s), w.Digest, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := <-peers; !ok {
			b.Fatal("no answer")
		}
		conn.Close()
		for range peers {
		}
	}
}

func unicastAddrs(s *running) []*net.UDPAddr { return []*net.UDPAddr{s.udp} }

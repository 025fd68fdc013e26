package peer

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// testBlob returns n pseudo-random bytes (deterministic per seed) and the
// Want for them.
func testBlob(name string, n int, seed uint64) ([]byte, fetch.Want) {
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'p'})
	_, _ = r.Read(data)
	copy(data, []byte{0x28, 0xb5, 0x2f, 0xfd}) // zstd magic, as an archive starts
	return data, fetch.Want{Digest: packages.SumBytes(data), Size: int64(n), Path: "packages/" + name + ".tar.zst", Name: name}
}

// newCache returns a cache in a temporary directory holding blobs.
func newCache(t testing.TB, blobs ...[]byte) *fetch.Cache {
	t.Helper()
	c := &fetch.Cache{Dir: t.TempDir()}
	for _, b := range blobs {
		if err := os.WriteFile(c.Path(packages.SumBytes(b)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// loopback returns the index of the host's loopback interface.
func loopback(t testing.TB) int {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			return ifi.Index
		}
	}
	t.Skip("no loopback interface")
	return 0
}

// loIfaces returns an interface list with only the loopback interface,
// holding the given prefixes (default 127.0.0.1/8).
func loIfaces(t testing.TB, nets ...string) func() ([]Interface, error) {
	lo := Interface{Index: loopback(t), Name: "lo", Flags: net.FlagUp | net.FlagLoopback}
	if len(nets) == 0 {
		nets = []string{"127.0.0.1/8"}
	}
	for _, n := range nets {
		lo.Nets = append(lo.Nets, netip.MustParsePrefix(n))
	}
	return func() ([]Interface, error) { return []Interface{lo}, nil }
}

// running is a Server serving on 127.0.0.1.
type running struct {
	*Server
	udp  *net.UDPAddr
	http netip.AddrPort
}

// serve runs s on 127.0.0.1 sockets until the test ends. Without injected
// interfaces it sees the loopback interface only.
func serve(t testing.TB, s *Server) *running {
	t.Helper()
	return serveOn(t, s, netip.MustParseAddr("127.0.0.1"))
}

// serveOn is serve on another loopback address (127.0.0.0/8 is all ours).
func serveOn(t testing.TB, s *Server, ip netip.Addr) *running {
	t.Helper()
	if s.Interfaces == nil {
		s.Interfaces = loIfaces(t)
	}
	udp := listenUDP(t, netip.AddrPortFrom(ip, 0).String())
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, udp, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &running{Server: s, udp: udp.LocalAddr().(*net.UDPAddr), http: ln.Addr().(*net.TCPAddr).AddrPort()}
}

func listenUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends b from conn to the server and waits (bounded) for one
// datagram back.
func exchange(t testing.TB, conn *net.UDPConn, to *net.UDPAddr, b []byte) []byte {
	t.Helper()
	if _, err := conn.WriteToUDP(b, to); err != nil {
		t.Fatal(err)
	}
	return receive(t, conn)
}

func receive(t testing.TB, conn *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}

// unicast returns Source.Targets for servers on 127.0.0.1.
func unicast(addrs ...*net.UDPAddr) func() ([]*net.UDPAddr, error) {
	return func() ([]*net.UDPAddr, error) { return addrs, nil }
}

// loopConn is Source.Conn on 127.0.0.1.
func loopConn() (net.PacketConn, error) { return net.ListenPacket("udp4", "127.0.0.1:0") }

// mirror is a static HTTP mirror on 127.0.0.1 that counts requests.
type mirror struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newMirror(t testing.TB, files map[string][]byte) *mirror {
	m := &mirror{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.seen = append(m.seen, r.URL.Path)
		m.mu.Unlock()
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytesReadSeeker(b))
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *mirror) requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.seen)
}

func (m *mirror) source(t testing.TB) *fetch.Mirror {
	fm, err := fetch.NewMirror(m.URL, m.Client())
	if err != nil {
		t.Fatal(err)
	}
	return fm
}

// isNotFound reports whether err matches fetch.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, fetch.ErrNotFound) }

package peer

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Defaults of Config (DESIGN.md §3, config.toml [peer]).
const (
	DefaultUDPPort  = 1333
	DefaultHTTPPort = 9123
	DefaultWindow   = 150 * time.Millisecond
)

// Config is the [peer] section of config.toml, shared by the server and the
// client. Zero values mean the defaults. Whether peers are enabled at all
// is the caller's business: with peering off, no Source is built and no
// Server runs, so nothing is ever broadcast.
type Config struct {
	UDPPort  int // discovery port, on every peer alike; 0: DefaultUDPPort
	HTTPPort int // the server's HTTP port (answers carry it); 0: DefaultHTTPPort
	// Interfaces limits both sides to these interface names: the server
	// answers and serves only on them, the client broadcasts only on them.
	// Empty: the client broadcasts on every up, broadcast-capable,
	// non-loopback interface, and the server answers on every interface
	// (on loopback only this host can reach it).
	Interfaces []string
	// Window is how long a client waits for answers to one query; 0:
	// DefaultWindow. A fetch starts at the first answer; later answers
	// within the window are kept to fall back on.
	Window time.Duration
	Logger *slog.Logger // nil discards
}

func (c Config) udpPort() int  { return cmpOr(c.UDPPort, DefaultUDPPort) }
func (c Config) httpPort() int { return cmpOr(c.HTTPPort, DefaultHTTPPort) }

func (c Config) window() time.Duration {
	if c.Window <= 0 {
		return DefaultWindow
	}
	return c.Window
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// allows reports whether interface name is one Config lets us use.
func (c Config) allows(name string) bool {
	return len(c.Interfaces) == 0 || slices.Contains(c.Interfaces, name)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Interface is what peer needs to know of a network interface: its index,
// name, flags and IPv4 prefixes (address and subnet length).
type Interface struct {
	Index int
	Name  string
	Flags net.Flags
	Nets  []netip.Prefix // IPv4 only, e.g. 10.0.0.7/24
}

// SystemInterfaces lists the host's network interfaces (of the current
// network namespace) with their IPv4 addresses.
func SystemInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ifs))
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		it := Interface{Index: ifi.Index, Name: ifi.Name, Flags: ifi.Flags}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			ones, bits := ipn.Mask.Size()
			if !ok || !ip.Unmap().Is4() || bits == 0 {
				continue
			}
			if bits == 128 { // a v4-mapped mask
				ones -= 96
			}
			it.Nets = append(it.Nets, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, it)
	}
	return out, nil
}

// broadcastCapable reports whether queries may be broadcast on ifi: up,
// broadcast-capable, not loopback or point-to-point.
func broadcastCapable(ifi Interface) bool {
	return ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagBroadcast != 0 &&
		ifi.Flags&(net.FlagLoopback|net.FlagPointToPoint) == 0
}

// directedBroadcast returns the broadcast address of an IPv4 prefix, false
// for /31 and /32, which have none.
func directedBroadcast(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}, false
	}
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// BroadcastTargets returns where a client sends its queries: the directed
// broadcast address of every IPv4 subnet of every up, broadcast-capable,
// non-loopback interface that c allows, on c's UDP port, without repeats.
func BroadcastTargets(c Config, ifs []Interface) []*net.UDPAddr {
	var out []*net.UDPAddr
	seen := map[netip.Addr]bool{}
	for _, ifi := range ifs {
		if !broadcastCapable(ifi) || !c.allows(ifi.Name) {
			continue
		}
		for _, p := range ifi.Nets {
			b, ok := directedBroadcast(p)
			if !ok || seen[b] {
				continue
			}
			seen[b] = true
			out = append(out, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b, uint16(c.udpPort()))))
		}
	}
	return out
}

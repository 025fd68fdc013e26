//go:build !linux

package peer

import (
	"net"
	"net/netip"
)

// oobSize is unused where IP_PKTINFO is not supported.
const oobSize = 0

// enablePktinfo reports false: the receiving interface is unknown here, and
// senders are checked against every served subnet.
func enablePktinfo(net.PacketConn) bool { return false }

// readDatagram reads one datagram; the receiving interface is unknown (0).
func readDatagram(conn net.PacketConn, _ bool, buf, _ []byte) (int, int, netip.AddrPort, error) {
	n, addr, err := conn.ReadFrom(buf)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return n, 0, netip.AddrPort{}, nil
	}
	return n, 0, ua.AddrPort(), nil
}

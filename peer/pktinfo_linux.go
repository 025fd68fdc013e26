package peer

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// oobSize holds one IP_PKTINFO control message.
var oobSize = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// enablePktinfo asks the kernel to tell, with each datagram, the interface
// it arrived on (IP_PKTINFO), so that the subnet rule checks the sender
// against that interface only. It reports false for a PacketConn that is
// not a UDP socket or refuses the option.
func enablePktinfo(conn net.PacketConn) bool {
	uc, ok := conn.(*net.UDPConn)
	if !ok {
		return false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// readDatagram reads one datagram into buf and returns its length, the
// index of the interface it arrived on (0 when unknown) and its sender.
func readDatagram(conn net.PacketConn, pktinfo bool, buf, oob []byte) (n, ifindex int, src netip.AddrPort, err error) {
	if !pktinfo {
		return readPlain(conn, buf)
	}
	n, oobn, _, src, err := conn.(*net.UDPConn).ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	return n, pktinfoIndex(oob[:oobn]), src, nil
}

// pktinfoIndex finds the interface index in IP_PKTINFO control data:
// struct in_pktinfo { int ipi_ifindex; ... }.
func pktinfoIndex(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			return int(int32(binary.NativeEndian.Uint32(m.Data[:4])))
		}
	}
	return 0
}

func readPlain(conn net.PacketConn, buf []byte) (int, int, netip.AddrPort, error) {
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

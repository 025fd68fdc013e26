package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// Wire format (DESIGN.md §10). A query is "Q:" and 64 lowercase hex
// digits, padded with spaces to exactly QueryLen bytes; an answer is
// "H:<64 hex>:<http-port>", unpadded, so always shorter than a query.
//
// packets adds a second answer to §10's:
// "P:<64 hex>:<http-port>:<held>:<intent>:<key>", "I am downloading that
// blob, or about to; I hold <held> bytes of it that came in just now (0 if
// none did), and I get it <intent>: '-' undecided yet, 'm' from a mirror
// myself, 'p' from a peer; my host key is <key> (16 lowercase hex digits,
// all zero for none: HostKey); GET it from my HTTP port and you get it as
// it grows". Hosts
// that apply at the same moment use it to fetch a blob from the mirror once
// (Source, followOrder). A client that knows only H ignores it.
const (
	QueryLen      = 128
	hexLen        = 2 * sha256.Size
	queryPrefix   = "Q:"
	answerPrefix  = "H:"
	pendingPrefix = "P:"
	// maxAnswerLen is the longest valid answer: "H:" + 64 hex + ":" + 5 digits.
	maxAnswerLen = len(answerPrefix) + hexLen + 1 + 5
	// maxPendingLen is the longest pending answer: ":" and 19 digits, ":"
	// and the intent, ":" and 16 hex digits more.
	maxPendingLen = maxAnswerLen + 1 + 19 + 2 + 1 + 16
)

// Query returns the discovery datagram asking for blob d.
func Query(d packages.Digest) []byte {
	b := make([]byte, 0, QueryLen)
	b = append(b, queryPrefix...)
	b = append(b, d.String()...)
	for len(b) < QueryLen {
		b = append(b, ' ')
	}
	return b
}

// Answer returns the datagram saying "I hold blob d; GET it from my HTTP
// port".
func Answer(d packages.Digest, httpPort int) []byte {
	b := make([]byte, 0, maxAnswerLen)
	b = append(b, answerPrefix...)
	b = append(b, d.String()...)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(httpPort), 10)
}

// Pending returns the datagram saying "I am downloading blob d, or about
// to, getting it as intent says, and hold held bytes of it that are coming
// in; GET it from my HTTP port as it grows".
func Pending(d packages.Digest, httpPort int, held int64, intent fetch.Intent, key HostKey) []byte {
	b := make([]byte, 0, maxPendingLen)
	b = append(b, pendingPrefix...)
	b = append(b, d.String()...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(httpPort), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, max(held, 0), 10)
	b = append(b, ':', byte(intent), ':')
	return fmt.Appendf(b, "%016x", uint64(key))
}

// A Reply is a parsed answer, H or P.
type Reply struct {
	Digest  packages.Digest
	Port    int
	Pending bool         // a P answer: the blob is on its way to the peer
	Held    int64        // for P: bytes held that came in just now
	Intent  fetch.Intent // for P: how the peer gets it
	Key     HostKey      // for P: the peer's host key; 0 for none
}

// ParseReply parses an H answer (as ParseAnswer) or a P answer: "P:", 64
// lowercase hex digits, ":", a port as in H, ":", the bytes held in
// decimal without sign or leading zero (0 itself is "0"), ":", one of the
// intents '-', 'm' and 'p', ":", and 16 lowercase hex digits, and nothing
// else.
func ParseReply(b []byte) (Reply, bool) {
	if d, port, ok := ParseAnswer(b); ok {
		return Reply{Digest: d, Port: port}, true
	}
	head := len(pendingPrefix) + hexLen + 1
	if len(b) <= head || len(b) > maxPendingLen || string(b[:len(pendingPrefix)]) != pendingPrefix || b[head-1] != ':' {
		return Reply{}, false
	}
	d, ok := parseHex(b[len(pendingPrefix) : head-1])
	if !ok {
		return Reply{}, false
	}
	portB, heldB, ok := bytes.Cut(b[head:], []byte{':'})
	if !ok {
		return Reply{}, false
	}
	port, ok := parsePort(portB)
	if !ok {
		return Reply{}, false
	}
	heldB, rest, ok := bytes.Cut(heldB, []byte{':'})
	if !ok {
		return Reply{}, false
	}
	intentB, keyB, ok := bytes.Cut(rest, []byte{':'})
	if !ok || len(intentB) != 1 {
		return Reply{}, false
	}
	if len(keyB) != 16 || !isLowerHex(keyB) {
		return Reply{}, false
	}
	k, err := strconv.ParseUint(string(keyB), 16, 64)
	if err != nil {
		return Reply{}, false
	}
	key := HostKey(k)
	held, ok := parseCount(heldB)
	if !ok {
		return Reply{}, false
	}
	in := fetch.Intent(intentB[0])
	switch in {
	case fetch.IntentUndecided, fetch.IntentMirror, fetch.IntentPeer:
	default:
		return Reply{}, false
	}
	return Reply{Digest: d, Port: port, Pending: true, Held: held, Intent: in, Key: key}, true
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// A HostKey orders the hosts that fetch a blob at the same moment
// (followOrder): one per host, the same in its daemon's answers and in its
// client, and different between hosts. 0 is none: such a host follows only
// downloaders with bytes coming in or bound for a mirror, and is followed
// by nobody on its key. MachineKey derives it from the machine id; without
// one, InterfaceKey from the host's addresses.
type HostKey uint64

// MachineKey is the HostKey of a machine id (/etc/machine-id, unique per
// installed machine), or 0 for an empty one or systemd's first-boot
// "uninitialized", which many machines share.
func MachineKey(machineID string) HostKey {
	id := strings.TrimSpace(machineID)
	if id == "" || id == "uninitialized" {
		return 0
	}
	sum := sha256.Sum256([]byte("packets host key\x00" + id))
	return HostKey(binary.BigEndian.Uint64(sum[:8]) | 1) // never 0
}

// InterfaceKey is the HostKey of a host without a machine id: derived from
// the lowest IPv4 address of its up, broadcast-capable, non-loopback
// interfaces that c allows (the ones peering talks on), or 0 without one.
// Two hosts whose lowest such addresses are equal (isolated bridges with
// the same default address) have equal keys, and neither follows the
// other on its key.
func InterfaceKey(ifs []Interface, c Config) HostKey {
	var low netip.Addr
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagBroadcast == 0 || !c.allows(ifi.Name) {
			continue
		}
		for _, p := range ifi.Nets {
			if a := p.Addr(); a.Is4() && (!low.IsValid() || a.Less(low)) {
				low = a
			}
		}
	}
	if !low.IsValid() {
		return 0
	}
	b := low.As4()
	return HostKey(binary.BigEndian.Uint32(b[:])) // the address itself: ordered as addresses are
}

// parseCount parses 1–19 decimal digits, without a leading zero unless
// the number is 0.
func parseCount(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 || b[0] == '0' && len(b) > 1 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ParseQuery parses a query datagram. It accepts exactly QueryLen bytes:
// "Q:", 64 lowercase hex digits, then spaces only. Anything else is
// malformed and ignored by the server.
func ParseQuery(b []byte) (packages.Digest, bool) {
	if len(b) != QueryLen || string(b[:len(queryPrefix)]) != queryPrefix {
		return packages.Digest{}, false
	}
	hex := b[len(queryPrefix) : len(queryPrefix)+hexLen]
	for _, c := range b[len(queryPrefix)+hexLen:] {
		if c != ' ' {
			return packages.Digest{}, false
		}
	}
	return parseHex(hex)
}

// ParseAnswer parses an answer datagram: "H:", 64 lowercase hex digits, ":",
// and a port number 1–65535 in decimal without sign or leading zero, and
// nothing else.
func ParseAnswer(b []byte) (d packages.Digest, port int, ok bool) {
	head := len(answerPrefix) + hexLen + 1
	if len(b) <= head || len(b) > maxAnswerLen || string(b[:len(answerPrefix)]) != answerPrefix || b[head-1] != ':' {
		return packages.Digest{}, 0, false
	}
	d, ok = parseHex(b[len(answerPrefix) : head-1])
	if !ok {
		return packages.Digest{}, 0, false
	}
	port, ok = parsePort(b[head:])
	if !ok {
		return packages.Digest{}, 0, false
	}
	return d, port, true
}

// parseHex parses 64 lowercase hex digits, the only form packets writes.
func parseHex(b []byte) (packages.Digest, bool) {
	if !packages.IsHexDigest(string(b)) {
		return packages.Digest{}, false
	}
	d, err := packages.ParseDigest(string(b))
	return d, err == nil
}

// parsePort parses 1–5 decimal digits without a leading zero, 1–65535.
func parsePort(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 || b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// RepoKey is the digest that discovers a peer serving repository repo's
// signed release and index (DESIGN.md §5 files) instead of a blob. The wire
// format has only digests, so a repository is named by
// sha256("packets-repo\x00" + name); "" and "default" name the default
// repository.
func RepoKey(repo string) packages.Digest {
	return packages.SumBytes([]byte("packets-repo\x00" + repoDirName(repo)))
}

// repoDirName is the repository's name in URLs: "default" for the default
// repository.
func repoDirName(repo string) string {
	if repo == "" {
		return "default"
	}
	return repo
}

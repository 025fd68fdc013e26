package peer

import (
	"bytes"
	"crypto/sha256"
	"math"
	"net/netip"
	"strconv"

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
// myself, 'p' from a peer; my host key is <key> (an IPv4 address, 0.0.0.0
// for none); GET it from my HTTP port and you get it as it grows". Hosts
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
	// and the intent, ":" and a dotted IPv4 address more.
	maxPendingLen = maxAnswerLen + 1 + 19 + 2 + 1 + 15
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
func Pending(d packages.Digest, httpPort int, held int64, intent fetch.Intent, key netip.Addr) []byte {
	if !key.Is4() {
		key = netip.IPv4Unspecified()
	}
	b := make([]byte, 0, maxPendingLen)
	b = append(b, pendingPrefix...)
	b = append(b, d.String()...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(httpPort), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, max(held, 0), 10)
	b = append(b, ':', byte(intent), ':')
	return key.AppendTo(b)
}

// A Reply is a parsed answer, H or P.
type Reply struct {
	Digest  packages.Digest
	Port    int
	Pending bool         // a P answer: the blob is on its way to the peer
	Held    int64        // for P: bytes held that came in just now
	Intent  fetch.Intent // for P: how the peer gets it
	Key     netip.Addr   // for P: the peer's host key; invalid for none (0.0.0.0 on the wire)
}

// ParseReply parses an H answer (as ParseAnswer) or a P answer: "P:", 64
// lowercase hex digits, ":", a port as in H, ":", the bytes held in
// decimal without sign or leading zero (0 itself is "0"), ":", one of the
// intents '-', 'm' and 'p', ":", and a dotted IPv4 address in its shortest
// form, and nothing else.
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
	key, err := netip.ParseAddr(string(keyB))
	if err != nil || !key.Is4() || key.String() != string(keyB) {
		return Reply{}, false
	}
	if key.IsUnspecified() {
		key = netip.Addr{}
	}
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

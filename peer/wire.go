package peer

import (
	"crypto/sha256"
	"strconv"

	"github.com/packets-dev/packets/packages"
)

// Wire format (fixed, DESIGN.md §10). A query is "Q:" and 64 lowercase hex
// digits, padded with spaces to exactly QueryLen bytes; an answer is
// "H:<64 hex>:<http-port>", unpadded, so always shorter than a query.
const (
	QueryLen     = 128
	hexLen       = 2 * sha256.Size
	queryPrefix  = "Q:"
	answerPrefix = "H:"
	// maxAnswerLen is the longest valid answer: "H:" + 64 hex + ":" + 5 digits.
	maxAnswerLen = len(answerPrefix) + hexLen + 1 + 5
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

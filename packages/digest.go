package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Digest is the SHA-256 of a blob (an archive, an index, a file).
type Digest [sha256.Size]byte

// ParseDigest parses 64 lowercase or uppercase hex digits.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*sha256.Size {
		return d, fmt.Errorf("digest %q: want %d hex digits, have %d", s, 2*sha256.Size, len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("digest %q: %w", s, err)
	}
	return d, nil
}

// SumBytes returns the digest of b.
func SumBytes(b []byte) Digest { return sha256.Sum256(b) }

// SumReader returns the digest and length of everything read from r.
func SumReader(r io.Reader) (Digest, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var d Digest
	if err != nil {
		return d, n, err
	}
	h.Sum(d[:0])
	return d, n, nil
}

// String returns the digest as 64 lowercase hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Short returns the first 12 hex digits, for messages.
func (d Digest) Short() string { return d.String()[:12] }

// IsZero reports whether d is the zero digest (unset).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler (JSON, TOML).
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// IsHexDigest reports whether s is exactly 64 lowercase hex digits, the only
// form used in file names and URLs.
func IsHexDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// DigestMismatchError says that a blob's bytes do not hash to what the signed
// index promised. It is never retryable from the same source.
type DigestMismatchError struct {
	What string // what was checked, e.g. "htop 3.3.0" or "index-7.db"
	Want Digest
	Got  Digest
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("%s: sha256 mismatch: want %s, got %s", e.What, e.Want.Short(), e.Got.Short())
}

// SizeMismatchError says that a blob is not the size the signed index promised.
type SizeMismatchError struct {
	What string
	Want int64
	Got  int64 // -1 when the blob was cut off as soon as it grew past Want
}

func (e *SizeMismatchError) Error() string {
	if e.Got < 0 {
		return fmt.Sprintf("%s: larger than the %d bytes promised", e.What, e.Want)
	}
	return fmt.Sprintf("%s: size mismatch: want %d bytes, got %d", e.What, e.Want, e.Got)
}

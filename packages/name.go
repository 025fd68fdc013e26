package packages

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest package name accepted.
const MaxNameLen = 64

// Name is a package name: 1 to 64 bytes of lowercase ASCII letters, digits
// and "._+-", starting with a letter or a digit. Names are compared bytewise.
type Name string

// ParseName validates s as a package name.
func ParseName(s string) (Name, error) {
	n := Name(s)
	if err := n.Validate(); err != nil {
		return "", err
	}
	return n, nil
}

// Validate reports why n is not a valid package name, or nil.
func (n Name) Validate() error {
	if n == "" {
		return fmt.Errorf("package name is empty")
	}
	if len(n) > MaxNameLen {
		return fmt.Errorf("package name %.20q... is longer than %d bytes", string(n), MaxNameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '+' || c == '-') && i > 0:
		default:
			return fmt.Errorf("package name %q: character %q at %d is not allowed (use a-z, 0-9 and ._+-, starting with a letter or digit)", string(n), c, i)
		}
	}
	return nil
}

func (n Name) String() string { return string(n) }

// isControl reports characters that must never appear in a name, a path or
// a human-readable field: C0/C1 controls, and the Unicode bidirectional
// formatting characters that can make a name display as something it is not
// (CVE-2021-42574 "Trojan Source").
func isControl(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return r == utf8.RuneError
}

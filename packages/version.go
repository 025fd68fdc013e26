package packages

import (
	"fmt"
	"strings"
)

// Version is a package's human version string, such as "3.3.0" or
// "14.1.0-rc2". Upgrades follow a family's serial, not its version; versions
// matter for constraints in the state file and for display.
type Version string

func (v Version) String() string { return string(v) }

// Validate reports why v is not a usable version, or nil: 1 to 64 printable
// ASCII bytes without spaces, commas or comparison operators, starting with an
// alphanumeric character.
func (v Version) Validate() error {
	if v == "" {
		return fmt.Errorf("version is empty")
	}
	if len(v) > 64 {
		return fmt.Errorf("version %.20q... is longer than 64 bytes", string(v))
	}
	if !isAlnum(v[0]) {
		return fmt.Errorf("version %q must start with a letter or digit", string(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && !strings.ContainsRune(".+-_~:", rune(c)) {
			return fmt.Errorf("version %q: character %q is not allowed", string(v), c)
		}
	}
	return nil
}

// CompareVersions orders two versions the way pacman's vercmp does, which
// readers of version strings expect: runs of digits compare numerically, runs
// of letters lexically, a digit run is newer than a letter run, and a
// letter-suffix directly after a number is a pre-release
// (1.0rc1 < 1.0 < 1.0.1 < 1.0a... is not: 1.0a < 1.0). A "~" sorts before
// everything, as in Debian (1.0~beta < 1.0). It returns -1, 0 or +1.
func CompareVersions(a, b Version) int {
	x, y := string(a), string(b)
	for {
		// Tilde first: it sorts before anything, even the end of the string.
		tx, ty := strings.HasPrefix(x, "~"), strings.HasPrefix(y, "~")
		switch {
		case tx && ty:
			x, y = x[1:], y[1:]
			continue
		case tx:
			return -1
		case ty:
			return 1
		}
		sepX, sepY := leadingSeparators(x), leadingSeparators(y)
		x, y = x[sepX:], y[sepY:]
		if x == "" || y == "" {
			return compareTail(x, y, sepX > 0, sepY > 0)
		}
		// A separator on one side only: that side has started a new
		// component while the other continues the current one.
		if (sepX > 0) != (sepY > 0) {
			if sepX > 0 {
				return 1
			}
			return -1
		}
		sx, restX := nextSegment(x)
		sy, restY := nextSegment(y)
		if c := compareSegments(sx, sy); c != 0 {
			return c
		}
		x, y = restX, restY
	}
}

// compareTail decides when at least one side has run out. The side with more
// left is newer, unless what is left is a letter run glued to the previous
// segment (a pre-release suffix such as "rc1").
func compareTail(x, y string, sepX, sepY bool) int {
	switch {
	case x == "" && y == "":
		return 0
	case x == "":
		if isDigit(y[0]) || sepY {
			return -1
		}
		return 1
	default:
		if isDigit(x[0]) || sepX {
			return 1
		}
		return -1
	}
}

func leadingSeparators(s string) int {
	i := 0
	for i < len(s) && !isAlnum(s[i]) && s[i] != '~' {
		i++
	}
	return i
}

func nextSegment(s string) (seg, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isAlnum(s[i]) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareSegments(a, b string) int {
	da, db := isDigit(a[0]), isDigit(b[0])
	switch {
	case da && !db:
		return 1
	case !da && db:
		return -1
	case da:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Op is a comparison operator in a version constraint.
type Op string

// The operators a constraint may use.
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// Term is one comparison of a constraint, such as ">= 14.0".
type Term struct {
	Op      Op
	Version Version
}

// Constraint is a conjunction of terms: ">= 1.2, < 2" allows versions that
// satisfy every term. The zero Constraint allows every version.
type Constraint struct {
	Terms []Term
}

// ParseConstraint parses a comma-separated list of "OP VERSION" terms. A bare
// version means "= VERSION". The empty string is the constraint that allows
// everything.
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		op := OpEq
		if strings.HasPrefix(part, "==") { // "==" is the same as "="
			part = part[1:]
		}
		for _, cand := range []Op{OpGe, OpLe, OpNe, OpEq, OpGt, OpLt} { // two-byte operators first
			if strings.HasPrefix(part, string(cand)) {
				op, part = cand, strings.TrimSpace(part[len(cand):])
				break
			}
		}
		v := Version(part)
		if err := v.Validate(); err != nil {
			return Constraint{}, fmt.Errorf("constraint %q: %w", s, err)
		}
		c.Terms = append(c.Terms, Term{Op: op, Version: v})
	}
	return c, nil
}

// IsZero reports whether c allows every version.
func (c Constraint) IsZero() bool { return len(c.Terms) == 0 }

// Allows reports whether v satisfies every term of c.
func (c Constraint) Allows(v Version) bool {
	for _, t := range c.Terms {
		cmp := CompareVersions(v, t.Version)
		ok := false
		switch t.Op {
		case OpEq:
			ok = cmp == 0
		case OpNe:
			ok = cmp != 0
		case OpLt:
			ok = cmp < 0
		case OpLe:
			ok = cmp <= 0
		case OpGt:
			ok = cmp > 0
		case OpGe:
			ok = cmp >= 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// String formats c canonically: ">= 1.2, < 2".
func (c Constraint) String() string {
	parts := make([]string, len(c.Terms))
	for i, t := range c.Terms {
		parts[i] = string(t.Op) + " " + string(t.Version)
	}
	return strings.Join(parts, ", ")
}

// Dependency is one entry of a manifest's dependencies: a name and an
// optional constraint, written "ncurses" or "ncurses >= 6.0".
type Dependency struct {
	Name       Name
	Constraint Constraint
}

// ParseDependency parses "NAME" or "NAME CONSTRAINT".
func ParseDependency(s string) (Dependency, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t<>=!")
	name, rest := s, ""
	if i >= 0 {
		name, rest = s[:i], s[i:]
	}
	n, err := ParseName(name)
	if err != nil {
		return Dependency{}, err
	}
	c, err := ParseConstraint(rest)
	if err != nil {
		return Dependency{}, err
	}
	return Dependency{Name: n, Constraint: c}, nil
}

func (d Dependency) String() string {
	if d.Constraint.IsZero() {
		return string(d.Name)
	}
	return string(d.Name) + " " + d.Constraint.String()
}

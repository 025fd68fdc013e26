package desired

import (
	"fmt"
	"maps"
	"slices"

	"github.com/packets-dev/packets/packages"
)

// Ensure says whether a declared package must be present or absent.
type Ensure uint8

// The values of a package's ensure attribute. The zero value is
// EnsurePresent, the default when ensure is not written.
const (
	EnsurePresent Ensure = iota
	EnsureAbsent
)

// String returns "present" or "absent", as written in a state file.
func (e Ensure) String() string {
	switch e {
	case EnsurePresent:
		return "present"
	case EnsureAbsent:
		return "absent"
	}
	return fmt.Sprintf("Ensure(%d)", uint8(e))
}

// MarshalText renders e as its state-file spelling, for JSON documents.
func (e Ensure) MarshalText() ([]byte, error) {
	if e > EnsureAbsent {
		return nil, fmt.Errorf("ensure value %d is out of range", uint8(e))
	}
	return []byte(e.String()), nil
}

// Pos is a position in a state file.
type Pos struct {
	File string // the path as it was given to Load or LoadMachine
	Line int    // 1-based
	Col  int    // 1-based, in characters
}

// String formats p as "FILE:LINE:COL", such as "state.hcl:3:1".
func (p Pos) String() string {
	if p.File == "" && p.Line == 0 {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// FileLine formats p as "FILE:LINE", the short form a plan shows beside an
// action ("state.hcl:1").
func (p Pos) FileLine() string {
	if p.File == "" && p.Line == 0 {
		return "-"
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Want is one declared package.
type Want struct {
	Name       packages.Name
	Constraint packages.Constraint // zero = newest
	Hold       bool                // never upgrade in place
	Ensure     Ensure
	Repo       string            // "" = first repository in config order that offers the name
	Options    map[string]string // handed to hooks; nil when the block sets none
	Pos        Pos               // where the block starts
}

// State is the merged desired state of a machine: every declared package,
// present or absent.
type State struct {
	Packages map[packages.Name]Want
	Files    []string // files read, in order
}

// Names returns the declared package names, sorted.
func (s State) Names() []packages.Name {
	return slices.Sorted(maps.Keys(s.Packages))
}

// MaxRepoNameLen is the longest repository name accepted.
const MaxRepoNameLen = 64

// ValidateRepoName reports why s is not a valid repository name, or nil. A
// repository name, as in config.toml's [repos.NAME], is 1 to 64 bytes of
// lowercase ASCII letters, digits, '-' and '_', starting with a letter or a
// digit.
func ValidateRepoName(s string) error {
	if s == "" {
		return fmt.Errorf("repository name is empty")
	}
	if len(s) > MaxRepoNameLen {
		return fmt.Errorf("repository name %.20q... is longer than %d bytes", s, MaxRepoNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("repository name %q: character %q at %d is not allowed (use a-z, 0-9, - and _, starting with a letter or digit)", s, c, i)
		}
	}
	return nil
}

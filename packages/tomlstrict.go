package packages

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// TOMLError lists every problem found in a TOML document, each with the line
// it is on, so that one run shows the author everything to fix.
type TOMLError struct {
	File     string
	Problems []Problem
}

// Problem is one finding in a file: the field it concerns, the line (0 when
// unknown) and what is wrong.
type Problem struct {
	Field string
	Line  int
	Msg   string
}

func (e *TOMLError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// DecodeTOMLStrict decodes data into v and refuses what a lenient decoder
// would silently drop: every key that v has no field for is a problem naming
// the key and its line. A syntax or type error is returned as a single
// problem with its line. file names the document in messages.
func DecodeTOMLStrict(file string, data []byte, v any) (toml.MetaData, error) {
	md, err := toml.Decode(string(data), v)
	if err != nil {
		return md, &TOMLError{File: file, Problems: []Problem{tomlProblem(err)}}
	}
	var probs []Problem
	for _, k := range md.Undecoded() {
		probs = append(probs, Problem{Field: k.String(), Line: TOMLKeyLine(data, k), Msg: "unknown key"})
	}
	if len(probs) > 0 {
		return md, &TOMLError{File: file, Problems: probs}
	}
	return md, nil
}

// typeErrorRE matches the plain-text errors the toml decoder returns for a
// value of the wrong type, which carry no structured position.
var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

func tomlProblem(err error) Problem {
	var pe toml.ParseError
	if pp := (*toml.ParseError)(nil); errors.As(err, &pp) {
		pe = *pp
	} else if !errors.As(err, &pe) {
		if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return Problem{Field: m[2], Line: line, Msg: m[3]}
		}
		return Problem{Msg: err.Error()}
	}
	return Problem{Field: pe.LastKey, Line: pe.Position.Line, Msg: pe.Message}
}

// TOMLKeyLine finds the 1-based line on which key is defined in data, or 0.
// The toml library records positions privately, so this walks the document's
// table headers and bare or quoted keys; dotted keys on a line are supported.
func TOMLKeyLine(data []byte, key toml.Key) int {
	var table []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			h := strings.Trim(line, "[] \t")
			if j := strings.Index(h, "]"); j >= 0 {
				h = h[:j]
			}
			table = splitTOMLKey(h)
			if keysEqual(table, key) {
				return i + 1
			}
			continue
		}
		eq := strings.Index(line, "=")
		if eq <= 0 || strings.HasPrefix(line, "#") {
			continue
		}
		full := append(append([]string{}, table...), splitTOMLKey(line[:eq])...)
		if keysEqual(full, key) {
			return i + 1
		}
	}
	return 0
}

func splitTOMLKey(s string) []string {
	var parts []string
	for p := range strings.SplitSeq(s, ".") {
		parts = append(parts, strings.Trim(strings.TrimSpace(p), `"'`))
	}
	return parts
}

func keysEqual(a []string, b toml.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package desired

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Error reports every problem found in a state: the HCL diagnostics of all
// files read, and the parsed files, for their source lines.
type Error struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// Error renders every diagnostic: a first line "FILE:LINE:COL: summary:
// detail", then the source line with a caret line under the subject.
// Diagnostics are separated by a blank line.
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(diagLine(d))
		b.WriteString("\n")
		e.writeSnippet(&b, d)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Messages returns the first line of every diagnostic, in order: one
// "FILE:LINE:COL: summary: detail" line per problem, for logs and JSON
// events.
func (e *Error) Messages() []string {
	out := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		out[i] = diagLine(d)
	}
	return out
}

// Unwrap returns the diagnostics as an error, so that errors.As can reach
// hcl.Diagnostics.
func (e *Error) Unwrap() error { return e.Diags }

// diagLine formats the first line of a diagnostic.
func diagLine(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s: ", rangePos(*d.Subject))
	}
	if d.Severity == hcl.DiagWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(oneLine(d.Summary))
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(oneLine(d.Detail))
	}
	return sanitize(b.String())
}

// oneLine folds a multi-line text into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeSnippet writes the subject's first line, numbered, and a line of
// carets under the subject (to the end of that line when the subject spans
// several).
func (e *Error) writeSnippet(b *strings.Builder, d *hcl.Diagnostic) {
	if d.Subject == nil {
		return
	}
	f := e.Files[d.Subject.Filename]
	if f == nil {
		return
	}
	src, s := f.Bytes, d.Subject
	if s.Start.Byte < 0 || s.Start.Byte > len(src) {
		return
	}
	lineStart := bytes.LastIndexByte(src[:s.Start.Byte], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[s.Start.Byte:], '\n'); i >= 0 {
		lineEnd = s.Start.Byte + i
	}
	line := strings.TrimSuffix(string(src[lineStart:lineEnd]), "\r")
	end := min(max(s.End.Byte, s.Start.Byte), lineStart+len(line))

	num := fmt.Sprint(s.Start.Line)
	gutter := strings.Repeat(" ", len(num))
	fmt.Fprintf(b, "  %s | %s\n", num, sanitize(line))
	fmt.Fprintf(b, "  %s | %s%s\n", gutter, padding(src[lineStart:s.Start.Byte]), carets(src[s.Start.Byte:end]))
}

// padding returns the blanks that align a caret under the character after
// prefix: tabs stay tabs, every other character becomes one space.
func padding(prefix []byte) string {
	var b strings.Builder
	for _, r := range string(prefix) {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// carets underlines text, one caret per character, at least one.
func carets(text []byte) string {
	return strings.Repeat("^", max(1, utf8.RuneCount(text)))
}

// sanitize replaces control characters other than tab in a source line, so
// that a hostile or binary file cannot drive the terminal.
func sanitize(line string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && isControlRune(r) {
			return '\uFFFD'
		}
		return r
	}, line)
}

func isControlRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

package packages

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SumsFile lists the SHA-256 of every regular file of an archive's data/
// tree, as pacman's .MTREE and dpkg's md5sums do, so that installing need
// not hash what the builder already hashed. It is optional (archives built
// before it install as they did, every file hashed) and, when present, the
// second entry, right after manifest.toml. Build writes it unless it
// would be larger than MaxSumsSize.
//
// Its format is exactly what "sha256sum data/..." prints from the package
// directory, so "sha256sum -c sha256sums" checks an unpacked package:
//
//	<64 lowercase hex digits><two spaces><archive path>\n
//
// one line per regular file (hard links are not listed: they are their
// target), in strictly ascending byte order of path, nothing else. A path
// with a backslash is written as sha256sum writes it: the line starts
// with a backslash and each backslash of the path is doubled (archive
// paths hold no control characters, so no other escape can occur). Only
// this one spelling is accepted, so that an archive means one thing.
//
// Who may rely on the list: Inspect (and so `repo index`, which signs
// nothing it did not inspect) hashes every file and refuses an archive
// whose list does not match its files exactly; Extract does the same
// unless ExtractOptions.TrustSums says the archive's own digest was
// checked against a signed index, whose signer thereby vouches for it.
const SumsFile = "sha256sums"

// MaxSumsSize bounds SumsFile, which is read into memory: 64 MiB is some
// 400,000 files of 100-byte paths, near Limits.MaxEntries.
const MaxSumsSize = 64 << 20

// sumsLine is one line of SumsFile without its path: the digest and the
// two spaces of sha256sum's text mode.
const sumsLine = 2*len(Digest{}) + 2

// formatSums writes the SumsFile of the regular files in paths (archive
// order, which Build keeps sorted) and digests.
func formatSums(paths []string, digests []Digest) []byte {
	var b bytes.Buffer
	for i, p := range paths {
		if strings.Contains(p, `\`) {
			b.WriteByte('\\')
			p = strings.ReplaceAll(p, `\`, `\\`)
		}
		b.WriteString(digests[i].String())
		b.WriteString("  ")
		b.WriteString(p)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// parseSums parses a SumsFile, accepting only the one spelling formatSums
// writes, paths that pass the archive's name rules below data/, each once,
// and no more of them than an archive may have entries.
func parseSums(b []byte, lim Limits) (map[string]Digest, error) {
	lines := bytes.Count(b, []byte{'\n'})
	if lines > lim.MaxEntries {
		return nil, &EntryError{Path: SumsFile, Reason: fmt.Sprintf("lists %d files, more than the %d entries allowed", lines, lim.MaxEntries), Err: ErrTooLarge}
	}
	sums := make(map[string]Digest, lines)
	prev := ""
	for n := 1; len(b) > 0; n++ {
		line, rest, ok := bytes.Cut(b, []byte{'\n'})
		if !ok {
			return nil, sumsErr(n, "", "the last line has no newline")
		}
		b = rest
		p, d, reason := parseSumsLine(line)
		if reason == "" {
			reason = checkPath(p, lim.MaxNameLen)
		}
		switch {
		case reason != "":
		case !strings.HasPrefix(p, DataDir+"/"):
			reason = fmt.Sprintf("%q is not below %s/", p, DataDir)
		case p <= prev:
			reason = fmt.Sprintf("%q does not follow %q: paths must be listed once each, in ascending byte order", p, prev)
		}
		if reason != "" {
			return nil, sumsErr(n, p, reason)
		}
		sums[p], prev = d, p
	}
	return sums, nil
}

// parseSumsLine splits one line into its path and digest, or says why it
// is not one.
func parseSumsLine(line []byte) (p string, d Digest, reason string) {
	escaped := len(line) > 0 && line[0] == '\\'
	if escaped {
		line = line[1:]
	}
	if len(line) <= sumsLine || string(line[sumsLine-2:sumsLine]) != "  " {
		return "", d, `not "<sha256>  <path>"`
	}
	for _, c := range line[:sumsLine-2] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", d, "the digest is not 64 lowercase hex digits"
		}
	}
	hex.Decode(d[:], line[:sumsLine-2]) // cannot fail: checked above
	p = string(line[sumsLine:])
	if !escaped {
		if strings.Contains(p, `\`) {
			return "", d, `a path with a backslash must be escaped (a line starting with "\")`
		}
		return p, d, ""
	}
	var u strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '\\' {
			u.WriteByte(p[i])
			continue
		}
		if i+1 == len(p) || p[i+1] != '\\' {
			return "", d, `only "\\" may be escaped in a path`
		}
		u.WriteByte('\\')
		i++
	}
	if !strings.Contains(u.String(), `\`) {
		return "", d, "an escaped line for a path without a backslash"
	}
	return u.String(), d, ""
}

// sumsErr refuses line n of SumsFile, which lists path p ("" when the
// line could not be read).
func sumsErr(n int, p, reason string) *EntryError {
	if p == "" {
		return &EntryError{Path: SumsFile, Reason: fmt.Sprintf("line %d: %s", n, reason)}
	}
	return &EntryError{Path: p, Reason: fmt.Sprintf("%s line %d: %s", SumsFile, n, reason)}
}

// setSums records the parsed SumsFile: from then on every regular file
// must be listed, and nothing else may be. It comes before any data
// entry, so it also sizes the entry list for the files it announces.
func (k *checker) setSums(sums map[string]Digest) {
	k.sums = sums
	if n := min(len(sums)+len(sums)/4, k.lim.MaxEntries); len(k.c.Entries) == 0 && n > 0 { // and some directories
		k.c.Entries = make([]Entry, 0, n)
		k.paths = make(map[string]int, n)
	}
}

// listed matches data entry e against SumsFile, when the archive has one:
// a regular file takes its digest from the list (checked against its
// content by the reader, unless trusted), any other entry must be absent
// from it.
func (k *checker) listed(e *Entry) error {
	if k.sums == nil {
		return nil
	}
	d, ok := k.sums[e.Path]
	switch {
	case ok && e.Type != TypeFile:
		return entryErr(e.Path, "listed in %s, but a %s", SumsFile, e.Type)
	case !ok && e.Type == TypeFile:
		return entryErr(e.Path, "a regular file that %s does not list", SumsFile)
	case ok:
		e.Digest = d
		k.listedFiles++
	}
	return nil
}

// unlisted returns the error for a SumsFile that names paths which are not
// regular files of the archive, or nil.
func (k *checker) unlisted() error {
	if k.sums == nil || k.listedFiles == len(k.sums) {
		return nil
	}
	for _, p := range slices.Sorted(maps.Keys(k.sums)) {
		if !k.isFile(p, false) {
			return entryErr(p, "listed in %s, but not a regular file of the archive", SumsFile)
		}
	}
	return nil // cannot be: every listed file was counted once
}

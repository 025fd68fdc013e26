package index

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/packets-dev/packets/packages"
)

// File names of a repository (mirror) root.
const (
	ReleaseFile   = "release.toml"
	SignatureFile = "release.toml.minisig"
	PackagesDir   = "packages"
)

// Caps on the small signed files, enforced while reading them.
const (
	MaxReleaseSize   = 64 << 10
	MaxSignatureSize = 4 << 10
)

// Release is the signed summary of a repository: which index is current,
// and until when it may be trusted.
type Release struct {
	Repo    string    // the repository's name, as its owner chose it ("default" unless set)
	Version int64     // strictly increasing, from 1
	Issued  time.Time // when `repo index` ran, UTC, whole seconds
	Expires time.Time // after this, clients refuse the release (a frozen mirror)
	Index   IndexRef  // the index file this release vouches for
}

// IndexRef names an index file and what it must hash to.
type IndexRef struct {
	File   string // base name on the mirror, "index-7.db"
	Size   int64
	SHA256 packages.Digest
}

// IndexFileName is the name BuildRepo gives the index of release version v.
func IndexFileName(v int64) string { return "index-" + strconv.FormatInt(v, 10) + ".db" }

// releaseTOML is the on-disk shape of release.toml.
type releaseTOML struct {
	Repo    string    `toml:"repo"`
	Version int64     `toml:"version"`
	Issued  time.Time `toml:"issued"`
	Expires time.Time `toml:"expires"`
	Index   struct {
		File   string `toml:"file"`
		Size   int64  `toml:"size"`
		SHA256 string `toml:"sha256"`
	} `toml:"index"`
}

// ParseRelease parses and validates release.toml. It does not check a
// signature: use VerifyRelease for anything that came from a mirror.
func ParseRelease(data []byte) (Release, error) {
	const file = ReleaseFile
	var raw releaseTOML
	md, err := packages.DecodeTOMLStrict(file, data, &raw)
	if err != nil {
		return Release{}, err
	}
	var probs []packages.Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, packages.Problem{Field: field, Line: packages.TOMLKeyLine(data, strings.Split(field, ".")), Msg: fmt.Sprintf(format, args...)})
	}
	for _, k := range []string{"repo", "version", "issued", "expires", "index.file", "index.size", "index.sha256"} {
		if !md.IsDefined(strings.Split(k, ".")...) {
			add(k, "missing")
		}
	}
	if len(probs) > 0 {
		return Release{}, &packages.TOMLError{File: file, Problems: probs}
	}
	r := Release{
		Repo: raw.Repo, Version: raw.Version,
		Issued: raw.Issued.UTC(), Expires: raw.Expires.UTC(),
		Index: IndexRef{File: raw.Index.File, Size: raw.Index.Size},
	}
	d, err := packages.ParseDigest(raw.Index.SHA256)
	if err != nil {
		add("index.sha256", "%v", err)
	}
	r.Index.SHA256 = d
	for _, p := range r.problems() {
		add(p.Field, "%s", p.Msg)
	}
	if len(probs) > 0 {
		return Release{}, &packages.TOMLError{File: file, Problems: probs}
	}
	return r, nil
}

// Validate reports why r is not a release that could be published.
func (r Release) Validate() error {
	if probs := r.problems(); len(probs) > 0 {
		return &packages.TOMLError{File: ReleaseFile, Problems: probs}
	}
	return nil
}

func (r Release) problems() []packages.Problem {
	var probs []packages.Problem
	add := func(field, msg string) { probs = append(probs, packages.Problem{Field: field, Msg: msg}) }
	if err := ValidateRepoName(r.Repo); err != nil {
		add("repo", err.Error())
	}
	if r.Version < 1 {
		add("version", fmt.Sprintf("%d: must be 1 or more", r.Version))
	}
	// Times are whole seconds in years 0–9999 (UTC): exactly what Encode
	// and the sync state write back, so an accepted release round-trips.
	for _, ft := range []struct {
		field string
		t     time.Time
	}{{"issued", r.Issued}, {"expires", r.Expires}} {
		if u := ft.t.UTC(); ft.t.Nanosecond() != 0 || u.Year() < 0 || u.Year() > 9999 {
			add(ft.field, fmt.Sprintf("%s: must be whole seconds, in years 0000 to 9999 UTC", ft.t.Format(time.RFC3339Nano)))
		}
	}
	if r.Issued.IsZero() || r.Expires.IsZero() || !r.Expires.After(r.Issued) {
		add("expires", fmt.Sprintf("%s must be after issued %s", r.Expires.Format(time.RFC3339), r.Issued.Format(time.RFC3339)))
	}
	if !isSafeFileName(r.Index.File) {
		add("index.file", fmt.Sprintf("%q: must be a plain file name (letters, digits and ._+-)", r.Index.File))
	}
	if r.Index.Size <= 0 {
		add("index.size", fmt.Sprintf("%d: must be positive", r.Index.Size))
	}
	return probs
}

// Encode writes r as release.toml, the inverse of ParseRelease.
func (r Release) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# packets repository release: verify with %s\n", SignatureFile)
	fmt.Fprintf(&b, "repo = %q\n", r.Repo)
	fmt.Fprintf(&b, "version = %d\n", r.Version)
	fmt.Fprintf(&b, "issued = %s\n", r.Issued.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "expires = %s\n", r.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "\n[index]\nfile = %q\nsize = %d\nsha256 = %q\n", r.Index.File, r.Index.Size, r.Index.SHA256)
	return b.Bytes()
}

// SignRelease signs the encoded release with key, as minisign -S does (a
// pre-hashed Ed25519 signature with a trusted comment naming the release).
func SignRelease(key minisign.PrivateKey, release []byte, r Release) []byte {
	trusted := fmt.Sprintf("timestamp:%d\tfile:%s\trepo:%s\tversion:%d", r.Issued.Unix(), ReleaseFile, r.Repo, r.Version)
	untrusted := "signature from packets secret key " + KeyID(key.ID())
	rd := minisign.NewReader(bytes.NewReader(release))
	io.Copy(io.Discard, rd) // reading a bytes.Reader cannot fail
	return rd.SignWithComments(key, trusted, untrusted)
}

// VerifyRelease checks release.toml's signature against the trusted keys,
// then parses it. Its errors are *Error matching ErrBadSignature,
// ErrUnknownKey or ErrBadRelease.
func VerifyRelease(data, sig []byte, keys []minisign.PublicKey) (Release, error) {
	r, _, err := verifyRelease(data, sig, keys)
	return r, err
}

// verifyRelease is VerifyRelease that also returns the ID of the key that
// signed.
func verifyRelease(data, sig []byte, keys []minisign.PublicKey) (Release, uint64, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return Release{}, 0, &Error{Kind: ErrBadSignature, Detail: SignatureFile + " is not a minisign signature", Hint: hintTampered}
	}
	known := false
	for _, k := range keys {
		if k.ID() != s.KeyID {
			continue
		}
		known = true
		if minisign.Verify(k, data, sig) {
			r, err := ParseRelease(data)
			if err != nil {
				return Release{}, 0, &Error{Kind: ErrBadRelease, Err: oneLine(err), Hint: hintOwner}
			}
			return r, k.ID(), nil
		}
	}
	if !known {
		return Release{}, 0, &Error{Kind: ErrUnknownKey, Detail: fmt.Sprintf("%s is signed by key %s, which is not trusted", ReleaseFile, KeyID(s.KeyID)), Hint: hintKeys}
	}
	return Release{}, 0, &Error{Kind: ErrBadSignature, Detail: fmt.Sprintf("%s does not match its signature by key %s", ReleaseFile, KeyID(s.KeyID)), Hint: hintTampered}
}

// ValidateRepoName reports why s cannot name a repository: 1 to 64 bytes of
// lowercase letters, digits and "._-", starting with a letter or digit.
func ValidateRepoName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("repository name %q must be 1 to 64 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("repository name %q: use a-z, 0-9 and ._-, starting with a letter or digit", s)
		}
	}
	return nil
}

// isSafeFileName reports whether s is a plain file name that needs no
// escaping in a URL or a shell: letters, digits and "._+-", not starting
// with a dot or a dash, at most 255 bytes.
func isSafeFileName(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}

// oneLine joins a multi-line error (a *packages.TOMLError listing several
// problems) into one line.
func oneLine(err error) error {
	if !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &joinedError{err}
}

type joinedError struct{ err error }

func (e *joinedError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e *joinedError) Unwrap() error { return e.err }

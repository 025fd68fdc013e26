package index

import (
	"errors"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

func testRelease() Release {
	return Release{
		Repo: "main", Version: 7, Issued: t0, Expires: t0.Add(24 * time.Hour),
		Index: IndexRef{File: "index-7.db", Size: 4096, SHA256: packages.SumBytes([]byte("index"))},
	}
}

func TestReleaseRoundTrip(t *testing.T) {
	want := testRelease()
	got, err := ParseRelease(want.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseReleaseRefuses(t *testing.T) {
	good := string(testRelease().Encode())
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"missing key", strings.Replace(good, "version = 7\n", "", 1), "version: missing"},
		{"unknown key", good + "mirror = \"x\"\n", "mirror: unknown key"},
		{"version zero", strings.Replace(good, "version = 7", "version = 0", 1), "version: 0: must be 1 or more"},
		{"expires before issued", strings.Replace(good, "expires = 2025-03-02", "expires = 2025-02-02", 1), "must be after issued"},
		{"path in file name", strings.Replace(good, `file = "index-7.db"`, `file = "../index-7.db"`, 1), "must be a plain file name"},
		{"bad digest", strings.Replace(good, `sha256 = "`, `sha256 = "zz`, 1), "index.sha256"},
		{"bad repo name", strings.Replace(good, `repo = "main"`, `repo = "Main Repo"`, 1), "repository name"},
		{"negative size", strings.Replace(good, "size = 4096", "size = -1", 1), "must be positive"},
		{"wrong type", strings.Replace(good, "version = 7", `version = "7"`, 1), "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRelease([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestVerifyRelease(t *testing.T) {
	pub, key := genKey(t)
	otherPub, otherKey := genKey(t)
	rel := testRelease()
	data := rel.Encode()
	sig := SignRelease(key, data, rel)
	tampered := []byte(strings.Replace(string(data), "version = 7", "version = 8", 1))
	malformed := []byte("repo = \"main\"\n")

	tests := []struct {
		name      string
		data, sig []byte
		keys      []minisign.PublicKey
		kind      error
		msg       string
	}{
		{"good", data, sig, []minisign.PublicKey{otherPub, pub}, nil, ""},
		{"tampered release", tampered, sig, []minisign.PublicKey{pub}, ErrBadSignature, "does not match its signature"},
		{"untrusted key", data, SignRelease(otherKey, data, rel), []minisign.PublicKey{pub}, ErrUnknownKey, "add the repository's public key"},
		{"no trusted key", data, sig, nil, ErrUnknownKey, KeyID(key.ID())},
		{"not a signature", data, []byte("<html>404</html>"), []minisign.PublicKey{pub}, ErrBadSignature, "not a minisign signature"},
		{"signed but malformed", malformed, SignRelease(key, malformed, rel), []minisign.PublicKey{pub}, ErrBadRelease, "version: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyRelease(tt.data, tt.sig, tt.keys)
			if tt.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(rel, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v; want %v containing %q", err, tt.kind, tt.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestSignMinisignCompatible checks that signatures are minisign's
// pre-hashed kind, which minisign -V verifies by default.
func TestSignMinisignCompatible(t *testing.T) {
	_, key := genKey(t)
	rel := testRelease()
	var s minisign.Signature
	if err := s.UnmarshalText(SignRelease(key, rel.Encode(), rel)); err != nil {
		t.Fatal(err)
	}
	if s.Algorithm != minisign.HashEdDSA || !strings.Contains(s.TrustedComment, "repo:main\tversion:7") {
		t.Errorf("signature algorithm %#x, trusted comment %q", s.Algorithm, s.TrustedComment)
	}
}

func genKey(t *testing.T) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, key, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, key
}

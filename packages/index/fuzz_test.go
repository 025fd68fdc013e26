package index

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/google/go-cmp/cmp"
)

// The fuzz targets of this file feed the parsers of what a mirror sends
// (release.toml, its signature, the index database) arbitrary bytes. Without
// -fuzz, `go test` runs only their seeds.

// FuzzParseRelease checks that ParseRelease never panics and that whatever it
// accepts survives Encode and a second ParseRelease unchanged.
func FuzzParseRelease(f *testing.F) {
	good := testRelease().Encode()
	for _, seed := range [][]byte{
		good,
		good[:len(good)/2],
		[]byte(strings.Replace(string(good), "issued = 2025-03-01T12:00:00Z", "issued = 2025-03-01T13:00:00+01:00", 1)),
		[]byte(strings.Replace(string(good), "expires = 2025-03-02T12:00:00Z", "expires = 2025-03-02", 1)),
		[]byte(strings.Replace(string(good), "version = 7", "version = 9223372036854775807", 1)),
		[]byte("repo = \"main\"\n"),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRelease(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRelease accepted a release that does not Validate: %v\ninput:\n%s", err, data)
		}
		enc := r.Encode()
		again, err := ParseRelease(enc)
		if err != nil {
			t.Fatalf("re-parsing the encoded release: %v\ninput:\n%s\nencoded:\n%s", err, data, enc)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Errorf("Encode then ParseRelease changed the release (-parsed +re-parsed):\n%s\ninput:\n%s\nencoded:\n%s", diff, data, enc)
		}
	})
}

// fuzzKey returns a key pair that is the same in every process (the fuzzing
// coordinator and its workers all sign the seeds alike), written with
// MarshalText and read back with LoadSecretKey and LoadPublicKey.
func fuzzKey(f *testing.F) (minisign.PublicKey, minisign.PrivateKey) {
	f.Helper()
	pub, key, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'}))
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	secret, err := key.MarshalText()
	if err != nil {
		f.Fatal(err)
	}
	public, err := pub.MarshalText()
	if err != nil {
		f.Fatal(err)
	}
	mustWrite(f, filepath.Join(dir, "fuzz.key"), string(secret)+"\n")
	mustWrite(f, filepath.Join(dir, "fuzz.pub"), string(public)+"\n")
	if key, err = LoadSecretKey(filepath.Join(dir, "fuzz.key"), nil); err != nil {
		f.Fatal(err)
	}
	if pub, err = LoadPublicKey(filepath.Join(dir, "fuzz.pub")); err != nil {
		f.Fatal(err)
	}
	return pub, key
}

// FuzzVerifyRelease checks that VerifyRelease never panics, that every
// refusal is one of its documented one-line errors, and that the only thing
// it accepts is the release that was signed, byte for byte.
func FuzzVerifyRelease(f *testing.F) {
	pub, key := fuzzKey(f)
	rel := testRelease()
	data := rel.Encode()
	sig := SignRelease(key, data, rel)
	malformed := []byte("repo = \"main\"\n")
	_, otherKey, err := minisign.GenerateKey(rand.NewChaCha8([32]byte{'o', 't', 'h', 'e', 'r'}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, sig)
	f.Add(data[:len(data)-1], sig)
	f.Add(append(bytes.Clone(data), ' '), sig)
	f.Add(data, sig[:len(sig)/2])
	f.Add(data, bytes.Replace(sig, []byte("version:7"), []byte("version:8"), 1))
	f.Add(data, SignRelease(otherKey, data, rel))
	f.Add(malformed, SignRelease(key, malformed, rel))
	f.Add(data, []byte("<html>404</html>"))
	f.Add([]byte{}, []byte{})

	f.Fuzz(func(t *testing.T, gotData, gotSig []byte) {
		got, err := VerifyRelease(gotData, gotSig, []minisign.PublicKey{pub})
		if err != nil {
			e, ok := errors.AsType[*Error](err)
			if !ok || !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrBadRelease) {
				t.Fatalf("err = %v (%T); want an *Error of kind ErrBadSignature, ErrUnknownKey or ErrBadRelease", err, err)
			}
			if strings.Contains(e.Error(), "\n") {
				t.Errorf("error spans lines: %q", e)
			}
			return
		}
		if !bytes.Equal(gotData, data) {
			t.Fatalf("accepted a release that was never signed:\n%q\nsignature:\n%q", gotData, gotSig)
		}
		if diff := cmp.Diff(rel, got); diff != "" {
			t.Errorf("accepted release (-signed +got):\n%s", diff)
		}
	})
}

// FuzzOpenIndex checks that Open either refuses arbitrary bytes with
// ErrBadIndex or opens them, and that the queries of an opened index never
// panic, whatever its tables hold.
func FuzzOpenIndex(f *testing.F) {
	r, rel := standardRepo(f)
	db := r.readFile(f, rel.Index.File)
	f.Add(db)
	for _, n := range []int{0, 16, 100, 512, 4096, len(db) / 2, len(db) - 1} {
		f.Add(db[:min(n, len(db))])
	}
	zeroed := bytes.Clone(db)
	clear(zeroed[len(zeroed)/2:])
	f.Add(zeroed)
	f.Add([]byte(strings.Repeat("not sqlite ", 500)))

	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "index.db")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ix, err := Open(p)
		if err != nil {
			if ix != nil {
				t.Errorf("Open returned an index with error %v", err)
			}
			if !errors.Is(err, ErrBadIndex) {
				t.Errorf("err = %v (%T); want ErrBadIndex", err, err)
			}
			return
		}
		defer ix.Close()
		exerciseIndex(t, ix)
	})
}

// exerciseIndex runs every query of ix, ignoring their errors: a damaged
// index may refuse them, but must not panic.
func exerciseIndex(t *testing.T, ix *Index) {
	ctx := t.Context()
	_ = ix.quickCheck(ctx)
	all, _ := ix.All(ctx)
	for _, term := range []string{"", "htop", "%", "proc"} {
		_, _ = ix.Search(ctx, term)
	}
	for _, suffix := range []string{"bin/htop", "htop", "htop/data/bin/htop", "/opt/packets/procps/data/data/bin/htop"} {
		_, _ = ix.SearchFile(ctx, suffix)
	}
	for _, a := range all[:min(len(all), 8)] {
		_, _ = ix.Lookup(ctx, a.Name)
		_, _ = ix.Files(ctx, a.Name, a.Serial)
	}
}

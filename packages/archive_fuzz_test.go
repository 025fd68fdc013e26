package packages

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// fuzzLimits keep every fuzz input's memory small.
var fuzzLimits = Limits{MaxEntries: 1000, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20, MaxWindow: 1 << 20, MaxNameLen: 256}

// FuzzInspect feeds Inspect arbitrary bytes, both as they are and
// zstd-compressed (so that the fuzzer, which mostly writes bytes that are
// not zstd, also explores the tar and entry rules). Inspect must never
// panic, and whatever it accepts Extract must accept too, with the same
// contents, whether it trusts the archive's SumsFile or not (Inspect
// checked it): the two share one implementation. Seeds: testdata/fuzz and the
// archives below.
func FuzzInspect(f *testing.F) {
	demo := buildBytes(f, demoSource(f))
	f.Add(demo)
	f.Add(decompress(f, demo))
	f.Add(rawTar(f, []te{manifestTE(""), dirTE("data"), symlinkTE("data/l", "x"), fileTE("data/l/f", "x")}, true))
	f.Add(rawTar(f, []te{manifestTE("[Hooks]\ninstall = \"install.lua\"\n"), fileTE(InstallHook, "x"), fileTE("data/a", "a"), {name: "data/b", typ: '1', link: "data/a"}}, true))
	f.Add(rawTar(f, []te{manifestTE(""), sumsTE(sumLine("data/a", "a")), fileTE("data/a", "a"), {name: "data/b", typ: '1', link: "data/a"}}, true))
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, enc.EncodeAll(data, nil)} {
			c, err := Inspect(bytes.NewReader(in), fuzzLimits)
			if err != nil {
				if _, ok := err.(*EntryError); !ok {
					t.Fatalf("Inspect error %T is not an *EntryError: %v", err, err)
				}
				continue
			}
			for _, trust := range []bool{false, true} {
				root, err := os.OpenRoot(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st, err := Extract(bytes.NewReader(in), root, ExtractOptions{Limits: fuzzLimits, Dest: "d", Tag: "f", TrustSums: trust})
				if err != nil {
					t.Fatalf("Inspect accepted what Extract (TrustSums %v) refuses: %v", trust, err)
				}
				if diff := cmp.Diff(c, st.Contents); diff != "" {
					t.Fatalf("Inspect and Extract (TrustSums %v) disagree (-inspect +extract):\n%s", trust, diff)
				}
				root.Close()
			}
		}
	})
}

func decompress(t testing.TB, b []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

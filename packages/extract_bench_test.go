package packages

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

const (
	benchFiles    = 2000
	benchFileSize = 4 << 10
)

// benchSource writes a package of benchFiles files of benchFileSize bytes
// of compressible text, 100 to a directory.
func benchSource(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	writeFile(b, dir, ManifestFile, testManifest(""), 0o644)
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"packets ", "extract ", "zstd ", "root ", "file ", "data ", "\n"}
	body := make([]byte, 0, benchFileSize)
	for i := range benchFiles {
		body = body[:0]
		for len(body) < benchFileSize {
			body = append(body, words[rng.IntN(len(words))]...)
		}
		writeFile(b, dir, fmt.Sprintf("data/d%02d/f%04d", i/100, i), string(body[:benchFileSize]), 0o644)
	}
	return dir
}

// BenchmarkExtract stages (and then publishes) 2,000 files of 4 KiB
// through os.Root, without SyncFS: the cost of the extraction itself.
// Compare with: zstd -dc bench.tar.zst | tar -x -C DIR.
func BenchmarkExtract(b *testing.B) {
	archive := buildBytes(b, benchSource(b))
	if out := os.Getenv("PACKETS_BENCH_ARCHIVE"); out != "" {
		must(b, os.WriteFile(out, archive, 0o644)) // for the comparison with zstd | tar
	}
	for _, publish := range []bool{false, true} {
		name := "stage"
		if publish {
			name = "stage+publish"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			root, err := os.OpenRoot(dir)
			must(b, err)
			defer root.Close()
			b.SetBytes(benchFiles * benchFileSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				st, err := Extract(bytes.NewReader(archive), root, ExtractOptions{Dest: fmt.Sprintf("p%d/data", i), Tag: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if publish {
					must(b, st.Publish(root, nil))
				}
				b.StopTimer()
				must(b, os.RemoveAll(filepath.Join(dir, fmt.Sprintf("p%d", i))))
				b.StartTimer()
			}
		})
	}
}

// BenchmarkInspect is the validation alone: decompress, check, hash.
func BenchmarkInspect(b *testing.B) {
	archive := buildBytes(b, benchSource(b))
	b.SetBytes(benchFiles * benchFileSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inspect(bytes.NewReader(archive), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

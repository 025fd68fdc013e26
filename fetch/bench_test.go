package fetch

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// tmpfsDir returns a directory on tmpfs when the machine has /dev/shm, so
// that the benchmark measures the fetch path rather than the disk.
func tmpfsDir(b *testing.B) string {
	b.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "packets-fetch-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// BenchmarkFetchAll fetches 200 blobs of 1 MiB from a loopback mirror into
// an empty cache on tmpfs, hashing, fsyncing and renaming each.
//
//	go test -run '^$' -bench FetchAll -benchtime 5x ./fetch
func BenchmarkFetchAll(b *testing.B) {
	const blobs, size = 200, 1 << 20
	files := map[string][]byte{}
	var wants []Want
	for i := range blobs {
		data, w := testBlob(fmt.Sprintf("blob%03d", i), size, uint64(i))
		files[repoPath(w)] = data
		wants = append(wants, w)
	}
	s := newServer(b, serveFiles(files))
	m := mirrorOf(b, s)
	root := tmpfsDir(b)

	b.SetBytes(blobs * size)
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(root, "cache")); err != nil { // keep tmpfs small
			b.Fatal(err)
		}
		b.StartTimer()
		f := &Fetcher{Cache: &Cache{Dir: filepath.Join(root, "cache")}, Sources: []Source{m}}
		if _, err := f.FetchAll(b.Context(), wants); err != nil {
			b.Fatal(err)
		}
	}
}

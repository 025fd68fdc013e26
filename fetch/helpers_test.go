package fetch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/packets-dev/packets/packages"
)

// testBlob returns n pseudo-random bytes (deterministic per seed) and the
// Want for them, served at packages/<name>.tar.zst.
func testBlob(name string, n int, seed uint64) ([]byte, Want) {
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(data)
	// An archive starts with the zstd magic; make the test blobs look alike.
	copy(data, []byte{0x28, 0xb5, 0x2f, 0xfd})
	return data, Want{
		Digest: packages.SumBytes(data),
		Size:   int64(n),
		Path:   "packages/" + name + ".tar.zst",
		Name:   name,
	}
}

// request is what a test server saw.
type request struct {
	Path  string
	Range string
}

// server is a real HTTP server on 127.0.0.1 whose handler a test chooses,
// recording every request.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	seen []request
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, request{Path: r.URL.Path, Range: r.Header.Get("Range")})
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// requests returns what the server saw so far.
func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// serveFiles serves files (path → bytes) honouring Range, as a static mirror
// does.
func serveFiles(files map[string][]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// mirrorOf returns a Mirror for s, with a client whose idle connections are
// closed at the end of the test.
func mirrorOf(t testing.TB, s *server) *Mirror {
	t.Helper()
	client := NewClient()
	t.Cleanup(client.CloseIdleConnections)
	m, err := NewMirror(s.URL+"/repo", client)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fastRetry retries without real waiting.
func fastRetry() RetryPolicy {
	return RetryPolicy{Attempts: 3, Base: time.Microsecond, Max: time.Millisecond, Stall: 5 * time.Second}
}

func newFetcher(t *testing.T, sources ...Source) *Fetcher {
	t.Helper()
	return &Fetcher{Cache: &Cache{Dir: t.TempDir()}, Sources: sources, Retry: fastRetry()}
}

// cacheFiles lists the names in a cache directory.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// mustRead returns the bytes of a cached blob.
func mustRead(t *testing.T, c *Cache, d packages.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(c.Path(d))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// repoPath is where a mirror made by mirrorOf serves w.
func repoPath(w Want) string { return "/repo/" + w.Path }

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	events []string
	last   map[string]int64
}

func (r *recorder) Start(w Want, source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("start %s %s", w.Name, source))
}

func (r *recorder) Progress(w Want, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]int64{}
	}
	r.last[w.Name] = n
}

func (r *recorder) Done(w Want, source string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("done %s %s %v", w.Name, source, err))
}

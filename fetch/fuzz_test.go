package fetch

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Bounds on what FuzzMirrorResponse lets a fuzzed server send.
const (
	fuzzBlobSize  = 700 // more than sniffLen, so that the HTML sniff and the copy after it both run
	fuzzMaxBody   = 4 << 10
	fuzzMaxHeader = 64
)

// fuzzResponse is what the fuzzed mirror answers to the next request.
type fuzzResponse struct {
	status        int
	contentLength string // "" sends none (chunked, or the server's own)
	contentRange  string
	body          []byte
}

// fuzzMirror is one HTTP server on 127.0.0.1 for a whole fuzz run, answering
// every request with the response set last. A fuzz function runs its inputs
// one at a time per process, so one slot is enough.
type fuzzMirror struct {
	next     atomic.Pointer[fuzzResponse]
	requests atomic.Int64
}

func (m *fuzzMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	resp := m.next.Load()
	if resp.contentLength != "" {
		w.Header().Set("Content-Length", resp.contentLength)
	}
	if resp.contentRange != "" {
		w.Header().Set("Content-Range", resp.contentRange)
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body) // a body the status or length forbids is the fuzzer's to send
}

// fuzzStatus maps any number to a status code WriteHeader accepts (100-999).
func fuzzStatus(n uint16) int {
	if n >= 100 && n <= 999 {
		return int(n)
	}
	return 100 + int(n)%900
}

func clip[S ~[]byte | ~string](s S, n int) S { return s[:min(len(s), n)] }

// FuzzMirrorResponse fetches one blob from a mirror that answers with a
// fuzzed status, Content-Length, Content-Range and body, after a fuzzed
// prefix of the blob (possibly wrong) was left in the part file by an
// earlier run, so that Range requests and their answers are fuzzed too.
// Whatever the answer, the Fetcher must not panic, must not hold more than
// Want.Size bytes in the part file, and must leave in the cache only the
// verified blob; when it reports success, the blob is there and verifies.
func FuzzMirrorResponse(f *testing.F) {
	data, w := testBlob("fuzz", fuzzBlobSize, 9)
	const half = fuzzBlobSize / 2
	html := []byte("<!DOCTYPE html><html><body>captive portal</body></html>")
	seeds := []struct {
		status    uint16
		cl, cr    string
		body      []byte
		held      uint16
		heldWrong bool
	}{
		{200, "700", "", data, 0, false},
		{200, "", "", data, 0, false},
		{206, "350", "bytes 350-699/700", data[half:], half, false},
		{206, "", "bytes 350-699/*", data[half:], half, false},
		{206, "", "bytes 350-699/700", data[half:], half, true},
		{206, "", "bytes 0-699/700", data, half, false},
		{206, "", "bytes 350-699/701", data[half:], half, false},
		{200, "", "", data, half, false}, // range ignored
		{416, "", "bytes */700", nil, half, false},
		{416, "", "bytes */700", nil, 0, false},
		{404, "", "", []byte("not found"), 0, false},
		{500, "", "", []byte("oops"), 0, false},
		{503, "", "", nil, half, false},
		{200, "700", "", data[:half], 0, false}, // cut short
		{200, "", "", append(bytes.Clone(data), 'x'), 0, false},
		{200, "9999", "", data, 0, false},
		{200, "abc", "", data, 0, false},
		{200, "-1", "", data, 0, false},
		{200, "", "", html, 0, false},
		{200, "", "", nil, fuzzBlobSize, false}, // complete part: no request
		{200, "", "", data, fuzzBlobSize, true},
		{302, "", "", nil, 0, false},
		{204, "", "", data, 0, false},
		{100, "", "", data, 0, false},
	}
	for _, s := range seeds {
		f.Add(s.status, s.cl, s.cr, s.body, s.held, s.heldWrong)
	}

	mirror := &fuzzMirror{}
	srv := httptest.NewUnstartedServer(mirror)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // invalid Content-Length values are logged
	srv.Start()
	f.Cleanup(srv.Close)
	client := NewClient()
	f.Cleanup(client.CloseIdleConnections)
	m, err := NewMirror(srv.URL+"/repo", client)
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, status uint16, contentLength, contentRange string, body []byte, held uint16, heldWrong bool) {
		mirror.next.Store(&fuzzResponse{
			status:        fuzzStatus(status),
			contentLength: clip(contentLength, fuzzMaxHeader),
			contentRange:  clip(contentRange, fuzzMaxHeader),
			body:          clip(body, fuzzMaxBody),
		})
		c := &Cache{Dir: t.TempDir()}
		n := int(held) % (fuzzBlobSize + 1)
		if n > 0 {
			prefix := bytes.Clone(data[:n])
			if heldWrong {
				prefix[n-1] ^= 0xff
			}
			writeFile(t, c.Dir, w.Digest.String()+partExt, prefix)
		}
		fetcher := &Fetcher{Cache: c, Sources: []Source{m},
			Retry: RetryPolicy{Attempts: 1, Stall: 5 * time.Second, AttemptTimeout: 10 * time.Second}}
		before := mirror.requests.Load()
		res, err := fetcher.FetchAll(t.Context(), []Want{w})
		if sent := mirror.requests.Load() - before; sent > 1 {
			t.Errorf("%d requests with Attempts: 1", sent)
		}
		checkFuzzedCache(t, c, w, data)
		if err != nil {
			if _, statErr := os.Lstat(c.Path(w.Digest)); statErr == nil {
				t.Errorf("FetchAll failed (%v) yet left the blob in the cache", err)
			}
			return
		}
		if len(res) != 1 || res[0].Path != c.Path(w.Digest) {
			t.Fatalf("results = %+v; want one with path %s", res, c.Path(w.Digest))
		}
		blob, err := c.OpenVerified(w.Digest, w.Size)
		if err != nil {
			t.Fatalf("FetchAll succeeded but the blob does not verify: %v", err)
		}
		blob.Close()
	})
}

// checkFuzzedCache checks that the cache holds nothing but blob w, exactly
// data, and at most a part file no longer than the blob.
func checkFuzzedCache(t *testing.T, c *Cache, w Want, data []byte) {
	t.Helper()
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(c.Dir, e.Name())
		switch e.Name() {
		case w.Digest.String() + blobExt:
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("cached blob differs from the wanted one: %d bytes, want %d", len(got), len(data))
			}
		case w.Digest.String() + partExt:
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() > w.Size {
				t.Errorf("part file holds %d bytes, more than the %d wanted", info.Size(), w.Size)
			}
		default:
			t.Errorf("unexpected file in the cache: %s", e.Name())
		}
	}
	if _, err := os.Lstat(c.Path(w.Digest)); err == nil {
		if _, err := os.Lstat(c.partPath(w.Digest)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("both the blob and its part file are in the cache (part: %v)", err)
		}
	}
}

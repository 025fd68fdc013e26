package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

func TestMirrorsGet(t *testing.T) {
	release := []byte("repo = \"main\"\nversion = 7\n")
	const maxSize = 1000
	ok := serveFiles(map[string][]byte{"/repo/release.toml": release})
	fail := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", code) }
	}
	endless := func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil { // chunked, no Content-Length
			if _, err := w.Write(bytes.Repeat([]byte("a"), 100)); err != nil {
				return
			}
		}
	}
	announced := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(maxSize+1))
		w.Write(make([]byte, maxSize+1))
	}
	html := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><head><title>502 Bad Gateway</title></head></html>")
	}
	stall := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("repo"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	tests := []struct {
		name     string
		handlers []http.HandlerFunc
		check    func(error) bool
	}{
		{"first mirror", []http.HandlerFunc{ok, fail(500)}, nil},
		{"failover", []http.HandlerFunc{fail(503), http.NotFound, ok}, nil},
		{"not found anywhere", []http.HandlerFunc{http.NotFound, http.NotFound}, func(err error) bool {
			return errors.Is(err, ErrNotFound) && strings.Contains(err.Error(), "release.toml: not found on any source")
		}},
		{"endless body", []http.HandlerFunc{endless}, isErr[*TooLargeError]},
		{"announced too large", []http.HandlerFunc{announced}, isErr[*TooLargeError]},
		{"html page", []http.HandlerFunc{html}, isErr[*HTMLPageError]},
		{"stall", []http.HandlerFunc{stall}, isErr[*StallError]},
		{"server error", []http.HandlerFunc{fail(500)}, func(err error) bool {
			var s *HTTPStatusError
			return errors.As(err, &s) && s.Code == 500 && !errors.Is(err, ErrNotFound)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms Mirrors
			for _, h := range tt.handlers {
				m := mirrorOf(t, newServer(t, h))
				m.StallTimeout = 50 * time.Millisecond
				ms = append(ms, m)
			}
			rc, err := ms.Get(t.Context(), "release.toml", maxSize)
			if tt.check != nil {
				if rc != nil || !tt.check(err) {
					t.Fatalf("Get = %v, %v", rc, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, release) {
				t.Errorf("Get read %q, %v; want %q", got, err, release)
			}
		})
	}
}

// isErr reports whether err holds an E.
func isErr[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

func TestMirrorsFetchResumesOnTheNextMirror(t *testing.T) {
	data, w := testBlob("htop", 200_000, 1)
	half := len(data) / 2
	first := newServer(t, dropAfter(data, half, http.NotFound))
	second := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
	ms := Mirrors{mirrorOf(t, first), mirrorOf(t, second)}

	var buf bytes.Buffer
	n, err := ms.Fetch(t.Context(), w, &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != w.Size || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("got %d bytes, want the blob", n)
	}
	want := []request{{Path: repoPath(w), Range: fmt.Sprintf("bytes=%d-", half)}}
	if diff := cmp.Diff(want, second.requests()); diff != "" {
		t.Errorf("second mirror saw (-want +got):\n%s", diff)
	}
}

func TestNewMirror(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"https://mirror.example.org/packets", true},
		{"http://127.0.0.1:8080", true},
		{"ftp://mirror.example.org/", false},
		{"mirror.example.org/packets", false},
		{"https://mirror.example.org/?x=1", false},
		{"https:///nohost", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			_, err := NewMirror(tt.base, nil)
			if (err == nil) != tt.ok {
				t.Errorf("NewMirror(%q) = %v, want ok=%v", tt.base, err, tt.ok)
			}
		})
	}
	ms, err := ParseMirrors([]string{"https://user:secret@a.example/p/", "http://b.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ms.String(), "mirrors https://user:xxxxx@a.example/p/, http://b.example"; got != want {
		t.Errorf("String = %q, want %q (no password)", got, want)
	}
}

func TestMirrorURL(t *testing.T) {
	m, err := NewMirror("https://mirror.example.org/packets/", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{"packages/htop-3.3.0.tar.zst", "https://mirror.example.org/packets/packages/htop-3.3.0.tar.zst"},
		{"packages/c++-1.0.tar.zst", "https://mirror.example.org/packets/packages/c++-1.0.tar.zst"},
		{"release.toml", "https://mirror.example.org/packets/release.toml"},
		{"../etc/passwd", ""},
		{"/etc/passwd", ""},
		{"packages//x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			u, err := m.url(tt.path)
			got := ""
			if err == nil {
				got = u.String()
			}
			if got != tt.want {
				t.Errorf("url(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name string
		err  error
		want outcome
	}{
		{"500", &HTTPStatusError{Code: 500}, retrySame},
		{"429", &HTTPStatusError{Code: 429}, retrySame},
		{"403", &HTTPStatusError{Code: 403}, nextSource},
		{"not found", fmt.Errorf("GET x: %w", ErrNotFound), nextSource},
		{"restart", fmt.Errorf("GET x: %w", ErrRestart), restartSame},
		{"digest", &packages.DigestMismatchError{}, mismatch},
		{"size", fmt.Errorf("GET x: %w", &packages.SizeMismatchError{}), mismatch},
		{"stall", &StallError{}, retrySame},
		{"timeout", &TimeoutError{}, retrySame},
		{"deadline", context.DeadlineExceeded, retrySame},
		{"truncated", fmt.Errorf("body: %w", io.ErrUnexpectedEOF), retrySame},
		{"reset", opErr, retrySame},
		{"redirect", &RedirectError{}, nextSource},
		{"html", &HTMLPageError{}, nextSource},
		{"local disk", &localError{syscall.ENOSPC}, giveUp},
		{"unknown", errors.New("weird"), nextSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt  int
		err      error
		min, max time.Duration
	}{
		{1, nil, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, nil, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, nil, 200 * time.Millisecond, 400 * time.Millisecond},
		{10, nil, 500 * time.Millisecond, time.Second},
		{1, &HTTPStatusError{Code: 503, RetryAfter: 700 * time.Millisecond}, 700 * time.Millisecond, 700 * time.Millisecond},
		{1, &HTTPStatusError{Code: 503, RetryAfter: time.Hour}, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt, tt.err), func(t *testing.T) {
			for range 50 {
				if d := p.backoff(tt.attempt, tt.err); d < tt.min || d > tt.max {
					t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
				}
			}
		})
	}
}

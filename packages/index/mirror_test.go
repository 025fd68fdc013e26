package index

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"
)

// fault makes the test mirror misbehave for one path.
type fault struct {
	status  int    // answer with this status and no body
	body    []byte // serve these bytes instead of the file
	cut     int    // promise the whole file in Content-Length, send this many bytes, hang up
	chunked bool   // send the body without a Content-Length
}

// mirror serves a repository directory over HTTP on 127.0.0.1.
type mirror struct {
	dir    string
	srv    *httptest.Server
	mu     sync.Mutex
	faults map[string]fault
	hits   map[string]int
}

func newMirror(t *testing.T, dir string) *mirror {
	m := &mirror{dir: dir, faults: map[string]fault{}, hits: map[string]int{}}
	m.srv = httptest.NewServer(m)
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mirror) fail(path string, f fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults[path] = f
}

func (m *mirror) hitCount(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[path]
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	m.mu.Lock()
	f, faulty := m.faults[p]
	m.hits[p]++
	m.mu.Unlock()
	if f.status != 0 {
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	body, err := os.ReadFile(filepath.Join(m.dir, filepath.FromSlash(p)))
	if f.body != nil {
		body, err = f.body, nil
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case faulty && f.cut > 0:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:f.cut]) // the server hangs up: less than promised
	case faulty && f.chunked:
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(body)
	default:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

// deadMirror refuses connections: nothing listens on port 1 (binding it
// needs privileges), unlike a closed test server's port, which a parallel
// test may reuse.
const deadMirror = "http://127.0.0.1:1"

// httpGetter is the smallest Getter over net/http.
type httpGetter struct{ base string }

func (g httpGetter) Get(ctx context.Context, p string, maxSize int64) (io.ReadCloser, error) {
	url := g.base + "/" + p
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %w", url, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	case resp.ContentLength > maxSize:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %d bytes, more than %d", url, resp.ContentLength, maxSize)
	}
	return resp.Body, nil
}

// failover tries each Getter in turn, as fetch.Mirrors does.
type failover []Getter

func (f failover) Get(ctx context.Context, p string, maxSize int64) (io.ReadCloser, error) {
	var last error
	for _, g := range f {
		rc, err := g.Get(ctx, p, maxSize)
		if err == nil || ctx.Err() != nil {
			return rc, err
		}
		last = err
	}
	return nil, last
}

// client is a machine that syncs.
type client struct {
	stateDir string
	repo     string
	keys     []minisign.PublicKey
	get      Getter
	now      time.Time
	maxIndex int64
	mirror   string // SyncOptions.Mirror
}

func newClient(t *testing.T, m *mirror, keys ...minisign.PublicKey) *client {
	return &client{stateDir: t.TempDir(), keys: keys, get: httpGetter{m.srv.URL}, now: t0.Add(time.Hour)}
}

func (c *client) sync(t *testing.T) (SyncResult, error) {
	t.Helper()
	return Sync(t.Context(), SyncOptions{
		Repo: c.repo, Get: c.get, Keys: c.keys, StateDir: c.stateDir, MaxIndexSize: c.maxIndex, Mirror: c.mirror,
		Now: func() time.Time { return c.now },
	})
}

func (c *client) mustSync(t *testing.T) SyncResult {
	t.Helper()
	res, err := c.sync(t)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// check asserts that the repository's index is release version, usable,
// and recorded as accepted, and that no download is left behind.
func (c *client) check(t *testing.T, version int64) {
	t.Helper()
	ix, err := OpenSynced(c.stateDir, c.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if got := ix.Release().Version; got != version {
		t.Errorf("index is release %d, want %d", got, version)
	}
	if all, err := ix.All(t.Context()); err != nil || len(all) == 0 {
		t.Errorf("index unusable: %d packages, %v", len(all), err)
	}
	st, err := readState(StatePath(c.stateDir, c.repo))
	if err != nil || st.Version != version {
		t.Errorf("state: version %d, %v; want %d", st.Version, err, version)
	}
	if ix.Release().Index != st.Index {
		t.Errorf("index ref %+v, state says %+v", ix.Release().Index, st.Index)
	}
	if got := leftovers(t, c.stateDir); len(got) > 0 {
		t.Errorf("temporary files left: %v", got)
	}
}

package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

func TestFetchAllFailsOverToSecondMirror(t *testing.T) {
	a, wa := testBlob("htop", 70_000, 1)
	b, wb := testBlob("ncurses", 50_000, 2)
	broken := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	good := newServer(t, serveFiles(map[string][]byte{repoPath(wa): a, repoPath(wb): b}))
	m1, m2 := mirrorOf(t, broken), mirrorOf(t, good)
	f := newFetcher(t, m1, m2)
	f.Parallel = 1 // one blob after the other, so the second sees the first mark m1 down

	got, err := f.FetchAll(t.Context(), []Want{wa, wb})
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Want: wa, Source: m2.String(), Path: f.Cache.Path(wa.Digest)},
		{Want: wb, Source: m2.String(), Path: f.Cache.Path(wb.Digest)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if !bytes.Equal(mustRead(t, f.Cache, wa.Digest), a) || !bytes.Equal(mustRead(t, f.Cache, wb.Digest), b) {
		t.Error("cached bytes differ from the served ones")
	}
	// Retried on 500 for the first blob (Attempts = 3), then skipped.
	if n := len(broken.requests()); n != 3 {
		t.Errorf("broken mirror saw %d requests, want 3 (retries for the first blob only)", n)
	}
}

func TestFetchAllNotFoundAnywhere(t *testing.T) {
	_, w := testBlob("htop", 1000, 1)
	s1 := newServer(t, http.NotFound)
	s2 := newServer(t, http.NotFound)
	f := newFetcher(t, mirrorOf(t, s1), mirrorOf(t, s2))

	_, err := f.FetchAll(t.Context(), []Want{w})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, s := range []string{"htop: not found on any source", s1.URL, s2.URL, w.Path} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// Not found is final: no retries.
	if n := len(s1.requests()) + len(s2.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if names := cacheFiles(t, f.Cache.Dir); len(names) != 0 {
		t.Errorf("cache holds %v, want nothing", names)
	}
}

func TestFetchAllNotFoundIsNotReportedWhenAnotherSourceFailed(t *testing.T) {
	_, w := testBlob("htop", 1000, 1)
	s1 := newServer(t, http.NotFound)
	s2 := newServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	f := newFetcher(t, mirrorOf(t, s1), mirrorOf(t, s2))

	_, err := f.FetchAll(t.Context(), []Want{w})
	var status *HTTPStatusError
	if !errors.As(err, &status) || status.Code != http.StatusForbidden {
		t.Fatalf("err = %v, want a 403 HTTPStatusError", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("err %v matches ErrNotFound, but one mirror refused rather than lacked it", err)
	}
}

func TestFetchAllUsesTheCache(t *testing.T) {
	data, w := testBlob("htop", 4000, 1)
	s := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
	f := newFetcher(t, mirrorOf(t, s))
	writeFile(t, f.Cache.Dir, w.Digest.String()+".tar.zst", data)

	got, err := f.FetchAll(t.Context(), []Want{w, w})
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Want: w, Source: SourceCache, Path: f.Cache.Path(w.Digest)},
		{Want: w, Source: SourceCache, Path: f.Cache.Path(w.Digest)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("mirror saw %d requests for a cached blob", n)
	}
}

func TestFetchAllVerifyCachedReplacesACorruptBlob(t *testing.T) {
	data, w := testBlob("htop", 4000, 1)
	s := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
	f := newFetcher(t, mirrorOf(t, s))
	f.VerifyCached = true
	bad := bytes.Clone(data)
	bad[100] ^= 1
	writeFile(t, f.Cache.Dir, w.Digest.String()+".tar.zst", bad)

	got, err := f.FetchAll(t.Context(), []Want{w})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Source == SourceCache {
		t.Error("a corrupt cached blob was trusted")
	}
	if !bytes.Equal(mustRead(t, f.Cache, w.Digest), data) {
		t.Error("the corrupt blob was not replaced")
	}
}

func TestFetchAllOffline(t *testing.T) {
	a, wa := testBlob("htop", 1000, 1)
	_, wb := testBlob("ncurses", 1000, 2)
	_, wc := testBlob("zlib", 1000, 3)
	s := newServer(t, http.NotFound)
	f := newFetcher(t, mirrorOf(t, s))
	f.Offline = true
	writeFile(t, f.Cache.Dir, wa.Digest.String()+".tar.zst", a)

	got, err := f.FetchAll(t.Context(), []Want{wa})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Source != SourceCache {
		t.Errorf("source %q, want cache", got[0].Source)
	}

	_, err = f.FetchAll(t.Context(), []Want{wa, wb, wc})
	var off *OfflineError
	if !errors.As(err, &off) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want an OfflineError matching ErrNotFound", err)
	}
	if want := "offline: 2 not in the cache: ncurses, zlib"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("offline fetch made %d requests", n)
	}
}

func TestFetchAllRespectsParallelLimit(t *testing.T) {
	const blobs, limit = 20, 3
	files := map[string][]byte{}
	var wants []Want
	for i := range blobs {
		data, w := testBlob(fmt.Sprintf("p%02d", i), 20_000, uint64(i))
		files[repoPath(w)] = data
		wants = append(wants, w)
	}
	var (
		mu             sync.Mutex
		inflight, peak int
		overlapped     bool
		full           = make(chan struct{}) // closed once limit requests overlap
	)
	serve := serveFiles(files)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		if inflight == limit && !overlapped {
			overlapped = true
			close(full)
		}
		mu.Unlock()
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		// Hold the first requests until limit of them overlap: this proves
		// the downloads do run concurrently, up to the limit.
		select {
		case <-full:
		case <-time.After(10 * time.Second):
			http.Error(w, "downloads did not overlap", http.StatusTeapot)
			return
		}
		serve(w, r)
	})
	f := newFetcher(t, mirrorOf(t, s))
	f.Parallel = limit

	got, err := f.FetchAll(t.Context(), wants)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != blobs {
		t.Fatalf("%d results, want %d", len(got), blobs)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != limit {
		t.Errorf("peak concurrent requests %d, want %d", peak, limit)
	}
	if names := cacheFiles(t, f.Cache.Dir); len(names) != blobs {
		t.Errorf("cache holds %d files, want %d", len(names), blobs)
	}
}

func TestFetchAllReportsProgress(t *testing.T) {
	data, w := testBlob("htop", 100_000, 1)
	s := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
	m := mirrorOf(t, s)
	f := newFetcher(t, m)
	rec := &recorder{}
	f.Observer = rec

	if _, err := f.FetchAll(t.Context(), []Want{w}); err != nil {
		t.Fatal(err)
	}
	want := []string{"start htop " + m.String(), "done htop " + m.String() + " <nil>"}
	if diff := cmp.Diff(want, rec.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if rec.last["htop"] != w.Size {
		t.Errorf("last progress %d, want %d", rec.last["htop"], w.Size)
	}
}

func TestFetchAllRejectsBadWants(t *testing.T) {
	_, w := testBlob("htop", 1000, 1)
	other := w
	other.Size++
	escape := w
	escape.Path = "../etc/passwd"
	tests := []struct {
		name  string
		wants []Want
		msg   string
	}{
		{"zero size", []Want{{Digest: w.Digest, Name: "x"}}, "x: size 0 is not positive"},
		{"no digest", []Want{{Size: 1, Name: "x"}}, "x: no digest"},
		{"path escapes", []Want{escape}, `mirror path "../etc/passwd"`},
		{"same digest two sizes", []Want{w, other}, "same digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFetcher(t)
			_, err := f.FetchAll(t.Context(), tt.wants)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want one containing %q", err, tt.msg)
			}
		})
	}
}

func TestFetchAllCommitsACompletePartFromAnEarlierRun(t *testing.T) {
	data, w := testBlob("htop", 5000, 1)
	s := newServer(t, http.NotFound)
	f := newFetcher(t, mirrorOf(t, s))
	writeFile(t, f.Cache.Dir, w.Digest.String()+".part", data)

	got, err := f.FetchAll(t.Context(), []Want{w})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Source != SourceCache || len(s.requests()) != 0 {
		t.Errorf("source %q after %d requests, want the complete part committed without asking", got[0].Source, len(s.requests()))
	}
	if _, err := os.Stat(f.Cache.partPath(w.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("part file still there: %v", err)
	}
}

func TestWantFor(t *testing.T) {
	a := packages.Available{Filename: "packages/htop-3.3.0.tar.zst", Digest: packages.SumBytes([]byte("x")), Size: 42}
	a.Name, a.Version = "htop", "3.3.0"
	want := Want{Digest: a.Digest, Size: 42, Path: "packages/htop-3.3.0.tar.zst", Name: "htop@3.3.0"}
	if diff := cmp.Diff(want, WantFor(a)); diff != "" {
		t.Errorf("WantFor (-want +got):\n%s", diff)
	}
}

// Ready hears of every blob once, already in the cache and complete, as
// soon as it is there: the cached one, the downloaded ones, a repeated
// digest once; a blob that failed never.
func TestFetchAllReady(t *testing.T) {
	a, wa := testBlob("htop", 70_000, 1)
	b, wb := testBlob("ncurses", 50_000, 2)
	_, wc := testBlob("missing", 1000, 3)
	srv := newServer(t, serveFiles(map[string][]byte{repoPath(wa): a, repoPath(wb): b}))
	m := mirrorOf(t, srv)
	f := newFetcher(t, m)
	if _, err := f.FetchAll(t.Context(), []Want{wa}); err != nil { // now cached
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got = map[packages.Digest]string{}
	)
	f.Ready = func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		if _, seen := got[r.Digest]; seen {
			t.Errorf("Ready twice for %s", r.Want)
		}
		got[r.Digest] = r.Source
		if err := f.Cache.Verify(r.Digest); err != nil {
			t.Errorf("Ready for %s before it is verified in the cache: %v", r.Want, err)
		}
	}
	if _, err := f.FetchAll(t.Context(), []Want{wa, wb, wb}); err != nil {
		t.Fatal(err)
	}
	want := map[packages.Digest]string{wa.Digest: SourceCache, wb.Digest: m.String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Ready heard (-want +got):\n%s", diff)
	}
	clear(got)
	if _, err := f.FetchAll(t.Context(), []Want{wc}); err == nil {
		t.Fatal("fetching a blob no source has succeeded")
	}
	if len(got) != 0 {
		t.Errorf("Ready heard of %v, which failed", got)
	}
}

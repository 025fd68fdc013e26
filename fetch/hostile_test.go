package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// dropAfter answers the first request without a Range with a full
// Content-Length, sends only the first n bytes and kills the connection;
// later requests get next.
func dropAfter(data []byte, n int, next http.HandlerFunc) http.HandlerFunc {
	var dropped atomic.Bool
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" || dropped.Swap(true) {
			next(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the server closes the connection mid-body
	}
}

func TestFetchAllResumesWithRange(t *testing.T) {
	data, w := testBlob("htop", 300_000, 1)
	half := len(data) / 2
	files := map[string][]byte{repoPath(w): data}
	ignoreRange := func(rw http.ResponseWriter, r *http.Request) { rw.Write(data) }
	refuseRange := func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			http.Error(rw, "no", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		rw.Write(data)
	}
	at := fmt.Sprintf("bytes=%d-", half)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    []string // Range headers seen, in order
	}{
		{"range honoured", dropAfter(data, half, serveFiles(files)), []string{"", at}},
		{"range ignored: restart from 0", dropAfter(data, half, ignoreRange), []string{"", at, ""}},
		{"416: restart from 0", dropAfter(data, half, refuseRange), []string{"", at, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handler)
			f := newFetcher(t, mirrorOf(t, s))
			if _, err := f.FetchAll(t.Context(), []Want{w}); err != nil {
				t.Fatal(err)
			}
			var ranges []string
			for _, r := range s.requests() {
				ranges = append(ranges, r.Range)
			}
			if diff := cmp.Diff(tt.want, ranges); diff != "" {
				t.Errorf("Range headers (-want +got):\n%s", diff)
			}
			if !bytes.Equal(mustRead(t, f.Cache, w.Digest), data) {
				t.Error("cached blob differs")
			}
			if diff := cmp.Diff([]string{w.Digest.String() + ".tar.zst"}, cacheFiles(t, f.Cache.Dir)); diff != "" {
				t.Errorf("cache files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchAllResumesAPartFromAnEarlierRun(t *testing.T) {
	data, w := testBlob("htop", 90_000, 1)
	bad := bytes.Clone(data[:30_000])
	bad[10] ^= 0xff
	tests := []struct {
		name string
		part []byte
		want []string // Range headers seen
	}{
		{"good prefix", data[:30_000], []string{"bytes=30000-"}},
		// The mismatch cannot be blamed on the mirror alone: it gets one
		// more chance, from 0.
		{"corrupt prefix", bad, []string{"bytes=30000-", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
			f := newFetcher(t, mirrorOf(t, s))
			writeFile(t, f.Cache.Dir, w.Digest.String()+".part", tt.part)
			if _, err := f.FetchAll(t.Context(), []Want{w}); err != nil {
				t.Fatal(err)
			}
			var ranges []string
			for _, r := range s.requests() {
				ranges = append(ranges, r.Range)
			}
			if diff := cmp.Diff(tt.want, ranges); diff != "" {
				t.Errorf("Range headers (-want +got):\n%s", diff)
			}
			if !bytes.Equal(mustRead(t, f.Cache, w.Digest), data) {
				t.Error("cached blob differs")
			}
		})
	}
}

func TestFetchAllWrongBytes(t *testing.T) {
	data, w := testBlob("htop", 10_000, 1)
	wrong, _ := testBlob("htop", 10_000, 99)
	liar := func(t *testing.T) *server {
		return newServer(t, serveFiles(map[string][]byte{repoPath(w): wrong}))
	}

	t.Run("next source used", func(t *testing.T) {
		bad := liar(t)
		good := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
		m2 := mirrorOf(t, good)
		f := newFetcher(t, mirrorOf(t, bad), m2)
		got, err := f.FetchAll(t.Context(), []Want{w})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Source != m2.String() {
			t.Errorf("source %q, want %q", got[0].Source, m2)
		}
		if n := len(bad.requests()); n != 1 {
			t.Errorf("lying mirror asked %d times, want once (a mismatch is never retried)", n)
		}
	})
	t.Run("only source", func(t *testing.T) {
		f := newFetcher(t, mirrorOf(t, liar(t)))
		_, err := f.FetchAll(t.Context(), []Want{w})
		var mm *packages.DigestMismatchError
		if !errors.As(err, &mm) || mm.Want != w.Digest || mm.Got != packages.SumBytes(wrong) {
			t.Fatalf("err = %v, want a DigestMismatchError", err)
		}
		if names := cacheFiles(t, f.Cache.Dir); len(names) != 0 {
			t.Errorf("cache holds %v after a mismatch, want nothing", names)
		}
	})
}

func TestFetchAllEndlessBody(t *testing.T) {
	_, w := testBlob("htop", 50_000, 1)
	var sent atomic.Int64
	s := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte{0x28}, 16<<10)
		for r.Context().Err() == nil {
			n, err := rw.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	f := newFetcher(t, mirrorOf(t, s))

	_, err := f.FetchAll(t.Context(), []Want{w})
	var sm *packages.SizeMismatchError
	if !errors.As(err, &sm) || sm.Got != -1 || sm.Want != w.Size {
		t.Fatalf("err = %v, want a SizeMismatchError for a body larger than promised", err)
	}
	if !strings.Contains(err.Error(), "larger than the 50000 bytes promised") {
		t.Errorf("err = %q does not say the body was too large", err)
	}
	if names := cacheFiles(t, f.Cache.Dir); len(names) != 0 {
		t.Errorf("cache holds %v, want nothing", names)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1: a size mismatch is not retried", n)
	}
}

func TestFetchAllStall(t *testing.T) {
	data, w := testBlob("htop", 50_000, 1)
	// Each answer sends 1000 bytes from where it was asked, then nothing.
	s := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		off, status := 0, http.StatusOK
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &off); err == nil {
			status = http.StatusPartialContent
			rw.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(data)-1, len(data)))
		}
		rw.Header().Set("Content-Length", strconv.Itoa(len(data)-off))
		rw.WriteHeader(status)
		rw.Write(data[off : off+1000])
		rw.(http.Flusher).Flush()
		<-r.Context().Done() // held until the client gives up
	})
	f := newFetcher(t, mirrorOf(t, s))
	f.Retry.Attempts = 2
	f.Retry.Stall = 50 * time.Millisecond

	_, err := f.FetchAll(t.Context(), []Want{w})
	var stall *StallError
	if !errors.As(err, &stall) || stall.After != f.Retry.Stall {
		t.Fatalf("err = %v, want a StallError", err)
	}
	want := []string{"", "bytes=1000-"} // the retry resumed
	var ranges []string
	for _, r := range s.requests() {
		ranges = append(ranges, r.Range)
	}
	if diff := cmp.Diff(want, ranges); diff != "" {
		t.Errorf("Range headers (-want +got):\n%s", diff)
	}
	// What did arrive is kept for the next run to resume.
	if diff := cmp.Diff([]string{w.Digest.String() + ".part"}, cacheFiles(t, f.Cache.Dir)); diff != "" {
		t.Errorf("cache files (-want +got):\n%s", diff)
	}
	if st, err := os.Stat(f.Cache.partPath(w.Digest)); err != nil || st.Size() != 2000 {
		t.Errorf("part file: %v, %v; want 2000 bytes kept", st, err)
	}
}

func TestFetchAllAttemptTimeout(t *testing.T) {
	data, w := testBlob("htop", 50_000, 1)
	// Bytes keep coming, each well within the stall limit, but the attempt
	// as a whole is cut off.
	s := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", strconv.Itoa(len(data)))
		for i := 0; i < len(data) && r.Context().Err() == nil; i++ {
			rw.Write(data[i : i+1])
			rw.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(time.Millisecond):
			}
		}
	})
	f := newFetcher(t, mirrorOf(t, s))
	f.Retry.Attempts = 1
	f.Retry.AttemptTimeout = 50 * time.Millisecond

	_, err := f.FetchAll(t.Context(), []Want{w})
	var to *TimeoutError
	if !errors.As(err, &to) {
		t.Fatalf("err = %v, want a TimeoutError", err)
	}
}

func TestFetchAllRedirects(t *testing.T) {
	data, w := testBlob("htop", 10_000, 1)
	other := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))
	redirector := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, other.URL+r.URL.Path, http.StatusFound)
	})

	t.Run("refused", func(t *testing.T) {
		f := newFetcher(t, mirrorOf(t, redirector))
		_, err := f.FetchAll(t.Context(), []Want{w})
		var re *RedirectError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "redirected to another host") {
			t.Fatalf("err = %v, want a RedirectError naming the other host", err)
		}
		if !strings.Contains(err.Error(), other.URL) {
			t.Errorf("err = %q does not name %s", err, other.URL)
		}
		if n := len(other.requests()); n != 0 {
			t.Errorf("the other host saw %d requests", n)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		m := mirrorOf(t, redirector)
		m.AllowCrossHost = true
		f := newFetcher(t, m)
		if _, err := f.FetchAll(t.Context(), []Want{w}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustRead(t, f.Cache, w.Digest), data) {
			t.Error("cached blob differs")
		}
	})
}

func TestFetchAllHTMLPage(t *testing.T) {
	data, w := testBlob("htop", 10_000, 1)
	portal := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		fmt.Fprint(rw, "<!DOCTYPE html><html><body>Please log in to the hotel wifi</body></html>")
	})
	good := newServer(t, serveFiles(map[string][]byte{repoPath(w): data}))

	f := newFetcher(t, mirrorOf(t, portal))
	_, err := f.FetchAll(t.Context(), []Want{w})
	var page *HTMLPageError
	if !errors.As(err, &page) || !strings.Contains(err.Error(), "mirror returned an HTML page") {
		t.Fatalf("err = %v, want an HTMLPageError", err)
	}

	m2 := mirrorOf(t, good)
	f = newFetcher(t, mirrorOf(t, portal), m2)
	got, err := f.FetchAll(t.Context(), []Want{w})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Source != m2.String() {
		t.Errorf("source %q, want %q", got[0].Source, m2)
	}
}

func TestFetchAllWrongContentRange(t *testing.T) {
	data, w := testBlob("htop", 20_000, 1)
	s := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		// Claims the blob is bigger than the index says: another file.
		rw.Header().Set("Content-Range", fmt.Sprintf("bytes 5000-19999/%d", len(data)+1))
		rw.WriteHeader(http.StatusPartialContent)
		rw.Write(data[5000:])
	})
	f := newFetcher(t, mirrorOf(t, s))
	writeFile(t, f.Cache.Dir, w.Digest.String()+".part", data[:5000])

	_, err := f.FetchAll(t.Context(), []Want{w})
	var sm *packages.SizeMismatchError
	if !errors.As(err, &sm) || sm.Got != w.Size+1 {
		t.Fatalf("err = %v, want a SizeMismatchError from Content-Range", err)
	}
}

func TestFetchAllShortContentLength(t *testing.T) {
	data, w := testBlob("htop", 10_000, 1)
	// Every answer is a clean 200 whose Content-Length covers half the blob.
	s := newServer(t, func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", "5000")
		rw.Write(data[:5000])
	})
	f := newFetcher(t, mirrorOf(t, s))

	_, err := f.FetchAll(t.Context(), []Want{w})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "body ended after 5000 of 10000 bytes (the server announced 5000)") {
		t.Fatalf("err = %v, want a truncation naming the announced length", err)
	}
	// Truncated, resumed (the server ignores Range: restart), truncated again.
	if n := len(s.requests()); n != f.Retry.Attempts {
		t.Errorf("%d requests, want %d", n, f.Retry.Attempts)
	}
}

//go:build netns

package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// netnsRole runs a role of the LAN test inside a network namespace. It
// refuses to run in the host's namespace: roles broadcast.
func netnsRole(role string) int {
	self, err := os.Readlink("/proc/self/ns/net")
	if host := os.Getenv("PEER_NETNS_HOST"); err != nil || host == "" || self == host {
		fmt.Fprintf(os.Stderr, "role %s: refusing to run outside a test network namespace (%s, host %s, %v)\n", role, self, host, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := func(k string) string { return os.Getenv("PEER_NETNS_" + k) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if role == "mirror" || role == "serve" || role == "hostile" {
		// Long-lived roles stop when their stdin closes.
		go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	}
	switch role {
	case "mirror":
		err = runMirror(ctx, env("DIR"), env("LOG"))
	case "serve":
		s := &Server{Cache: &fetch.Cache{Dir: env("CACHE")}, Config: Config{Logger: log}}
		err = s.ListenAndServe(ctx, func(net.Addr, net.Addr) { fmt.Println("ready") })
	case "hostile":
		err = runHostile(ctx, env("CACHE"), env("LOG"))
	case "fetch":
		err = runFetch(ctx, log, env("CACHE"), env("WANTS"), env("MIRROR"))
	case "bench":
		err = runBench(ctx, env("WANTS"), env("MIRROR"))
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "role %s: %v\n", role, err)
		return 1
	}
	return 0
}

// logRequests appends each request's path to a file.
func logRequests(path string, h http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintln(f, r.Method, r.URL.Path, r.Header.Get("Range"))
			f.Close()
		}
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// serveHTTP serves h on addr until ctx is done, saying "ready" once it
// listens.
func serveHTTP(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	fmt.Println("ready")
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// runMirror is a static mirror that logs every request.
func runMirror(ctx context.Context, dir, log string) error {
	return serveHTTP(ctx, fmt.Sprintf(":%d", mirrorPort), logRequests(log, http.FileServer(http.Dir(dir))))
}

// runHostile answers every query, for any digest, and serves each blob
// with one byte flipped (the right size: only the hash tells).
func runHostile(ctx context.Context, cacheDir, log string) error {
	udp, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", DefaultUDPPort))
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { udp.Close() })
	go func() {
		buf := make([]byte, 2*QueryLen)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if d, ok := ParseQuery(buf[:n]); ok {
				udp.WriteTo(Answer(d, DefaultHTTPPort), from)
			}
		}
	}()
	cache := &fetch.Cache{Dir: cacheDir}
	return serveHTTP(ctx, fmt.Sprintf(":%d", DefaultHTTPPort), logRequests(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := packages.ParseDigest(strings.TrimPrefix(r.URL.Path, "/blobs/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(cache.Path(d))
		if err != nil {
			b = make([]byte, 1<<20)
		}
		b[len(b)/2] ^= 0xff
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})))
}

// runFetch is a client with peering enabled: the default broadcast
// targets, then the mirror. It prints one JSON line per blob.
func runFetch(ctx context.Context, log *slog.Logger, cacheDir, wantsFile, mirrorURL string) error {
	wants, err := readWants(wantsFile)
	if err != nil {
		return err
	}
	m, err := fetch.NewMirror(mirrorURL, fetch.NewClient())
	if err != nil {
		return err
	}
	// Wait (bounded by the dial timeout) until the link carries traffic.
	if c, err := net.DialTimeout("tcp4", m.Base.Host, 10*time.Second); err != nil {
		return fmt.Errorf("mirror unreachable: %w", err)
	} else {
		c.Close()
	}
	src := &Source{Config: Config{Logger: log}}
	f := &fetch.Fetcher{Cache: &fetch.Cache{Dir: cacheDir}, Sources: []fetch.Source{src, m}, Logger: log}
	res, err := f.FetchAll(ctx, wants)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, r := range res {
		out := fetched{Name: r.Name, Source: r.Source}
		if ep, ok := src.Origin(r.Digest); ok {
			out.Origin = ep.String()
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}

func readWants(path string) ([]fetch.Want, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var wants []fetch.Want
	return wants, json.Unmarshal(data, &wants)
}

// tempCache returns an empty cache directory for one measured fetch.
func tempCache() (*fetch.Cache, func(), error) {
	dir, err := os.MkdirTemp("", "peer-bench-")
	if err != nil {
		return nil, nil, err
	}
	return &fetch.Cache{Dir: filepath.Join(dir)}, func() { os.RemoveAll(dir) }, nil
}

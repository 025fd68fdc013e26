package peer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/packets-dev/packets/packages"
)

// HTTP server bounds: a request has no body, so reading it is quick; a
// response may take as long as its size needs at a slow reader's pace, and
// no longer.
const (
	maxConns        = 128
	readTimeout     = 10 * time.Second
	idleTimeout     = 60 * time.Second
	writeGrace      = 30 * time.Second
	slowestReader   = 64 << 10 // bytes per second a reader must keep up with
	maxHeaderBytes  = 8 << 10
	blobContentType = "application/octet-stream"
)

func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
}

// serveHTTP serves GET and HEAD of /blobs/<64 lowercase hex> from the cache
// and of /repos/<name>/<file> for the repositories configured. Every other
// path is 404; there are no listings and no redirects.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.stats.requests.Add(1)
	log := s.logger()
	f, size, ok := s.open(r)
	if !ok {
		if d, isBlob := blobPath(r); isBlob && r.Method == http.MethodGet {
			if s.serveFollowed(w, r, d) {
				return
			}
			f, size, ok = s.open(r) // the download may have ended in between
		}
	}
	if !ok {
		log.Debug("not found", "path", r.URL.EscapedPath(), "peer", r.RemoteAddr)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.stats.served.Add(1)
	deadline := time.Now().Add(writeGrace + time.Duration(size/slowestReader)*time.Second)
	_ = http.NewResponseController(w).SetWriteDeadline(deadline)
	h := w.Header()
	h.Set("Content-Type", blobContentType) // never sniffed
	h.Set("X-Content-Type-Options", "nosniff")
	if hex, isBlob := strings.CutPrefix(r.URL.Path, "/blobs/"); isBlob {
		h.Set("ETag", `"`+hex+`"`) // content-addressed: If-Range works across resumes
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	log.Debug("serving", "path", r.URL.Path, "peer", r.RemoteAddr, "range", r.Header.Get("Range"))
	http.ServeContent(w, r, "", time.Time{}, f)
}

// open finds the file a request names, if it is one served.
func (s *Server) open(r *http.Request) (*os.File, int64, bool) {
	if r.URL.RawPath != "" { // escaped characters: never one of our names
		return nil, 0, false
	}
	var path string
	if d, ok := blobPath(r); ok {
		path = s.Cache.Path(d)
	} else if strings.HasPrefix(r.URL.Path, "/blobs/") {
		return nil, 0, false
	} else if rest, ok := strings.CutPrefix(r.URL.Path, "/repos/"); ok {
		name, file, ok := strings.Cut(rest, "/")
		if !ok {
			return nil, 0, false
		}
		p, err := s.repoFile(name, file)
		if err != nil {
			return nil, 0, false
		}
		path = p
	} else {
		return nil, 0, false
	}
	f, size, err := openRegular(path)
	if err != nil {
		return nil, 0, false
	}
	return f, size, true
}

// blobPath returns the blob a request's path names: /blobs/<64 lowercase
// hex>.
func blobPath(r *http.Request) (packages.Digest, bool) {
	hex, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	if !ok || r.URL.RawPath != "" || !packages.IsHexDigest(hex) {
		return packages.Digest{}, false
	}
	d, err := packages.ParseDigest(hex)
	return d, err == nil
}

// serveFollowed serves blob d while this host downloads it, or is about to
// (a "P:" answer offered it): from the first byte, each part as it
// arrives, ending when the blob is in place. The headers go out at once,
// so that a client waits for a claimed blob's download to start
// (fetch.StartWait) on the body, under its stall bound, not on the
// headers. The length is not known: the body is chunked, and a download
// that stops cuts the connection, so the client sees a short body, never a
// clean end. A range request is refused with 416 (the client starts again
// from the first byte). It reports false when d is not being downloaded.
func (s *Server) serveFollowed(w http.ResponseWriter, r *http.Request, d packages.Digest) bool {
	if _, ok := s.Cache.InProgress(d); !ok {
		return false
	}
	log := s.logger()
	h := w.Header()
	if r.Header.Get("Range") != "" {
		h.Set("Content-Range", "bytes */*")
		http.Error(w, "a blob still downloading is served from its first byte", http.StatusRequestedRangeNotSatisfiable)
		return true
	}
	s.stats.served.Add(1)
	s.stats.followed.Add(1)
	h.Set("Content-Type", blobContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(writeGrace))
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	log.Debug("serving as it downloads", "digest", d.Short(), "peer", r.RemoteAddr)
	var src io.ReadCloser
	fl, err := s.Cache.Follow(r.Context(), d)
	if err == nil {
		src = fl
	} else if f, _, ok := s.open(r); ok {
		src = f // put in place meanwhile: served whole, from the cache
	} else {
		log.Debug("download to serve did not start", "digest", d.Short(), "peer", r.RemoteAddr, "err", err)
		panic(http.ErrAbortHandler) // a body cut short: not the blob
	}
	defer src.Close()
	buf := make([]byte, 256<<10)
	for {
		// A reader must keep up with each part: the deadline moves on.
		_ = rc.SetWriteDeadline(time.Now().Add(writeGrace))
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return true
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			log.Debug("download being served stopped", "digest", d.Short(), "peer", r.RemoteAddr, "err", err)
			panic(http.ErrAbortHandler) // cut the body short: it is not the blob
		}
	}
}

// openRegular opens path for reading if it is a regular file, without
// following a symlink in its last component.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// filterListener accepts at most maxConns connections at once, and only
// those the subnet rule allows: the client's address must be inside a
// subnet of the (allowed) interface that holds the address it connected to.
type filterListener struct {
	net.Listener
	s   *Server
	sem chan struct{}
}

func (s *Server) filterListener(ln net.Listener) net.Listener {
	return &filterListener{Listener: ln, s: s, sem: make(chan struct{}, maxConns)}
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		l.sem <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		if l.allowed(c) {
			return &limitedConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
		}
		l.s.stats.refused.Add(1)
		l.s.logger().Debug("refused a connection from outside the subnet", "peer", c.RemoteAddr().String())
		c.Close()
		<-l.sem
	}
}

func (l *filterListener) allowed(c net.Conn) bool {
	local, ok1 := tcpAddr(c.LocalAddr())
	remote, ok2 := tcpAddr(c.RemoteAddr())
	if !ok1 || !ok2 {
		return false
	}
	ifs, err := l.s.ifaces.get(0)
	if err != nil {
		return false
	}
	return allowConn(ifs, l.s.Config, local, remote)
}

func tcpAddr(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap()
	return ip, ip.Is4()
}

// allowConn applies the subnet rule to a connection from remote to local.
func allowConn(ifs []Interface, c Config, local, remote netip.Addr) bool {
	for _, ifi := range ifs {
		if !c.allows(ifi.Name) || !holdsAddr(ifi, local) {
			continue
		}
		for _, p := range ifi.Nets {
			if p.Masked().Contains(remote) {
				return true
			}
		}
	}
	return false
}

// holdsAddr reports whether local is an address of ifi (any address of a
// loopback interface's subnet is).
func holdsAddr(ifi Interface, local netip.Addr) bool {
	for _, p := range ifi.Nets {
		if p.Addr() == local || ifi.Flags&net.FlagLoopback != 0 && p.Masked().Contains(local) {
			return true
		}
	}
	return false
}

// limitedConn gives its connection slot back when closed. It keeps the
// sendfile path of the TCP connection (ReadFrom).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

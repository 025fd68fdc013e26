package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/packets-dev/packets/packages"
)

// Mirror is one HTTP(S) base URL serving a repository as static files
// (DESIGN.md §5). It is a Source: Fetch gets packages/<file>.tar.zst
// relative to Base.
type Mirror struct {
	Base *url.URL
	// Client sends the requests; nil means http.DefaultTransport. Use
	// NewClient for the transport timeouts. The Mirror applies its own
	// redirect policy whatever Client.CheckRedirect says.
	Client *http.Client
	// AllowCrossHost lets a mirror redirect to another host (a CDN). Off,
	// such a redirect is a *RedirectError. Bytes are verified either way.
	AllowCrossHost bool
	// StallTimeout and Timeout bound Get (small signed files): no byte for
	// StallTimeout (0: 30 s) or the whole request taking Timeout (0: 2 min)
	// ends it. Blob fetches are bounded by the Fetcher's RetryPolicy instead.
	StallTimeout time.Duration
	Timeout      time.Duration
}

// maxRedirects bounds a redirect chain.
const maxRedirects = 5

// defaultGetTimeout bounds Mirror.Get.
const defaultGetTimeout = 2 * time.Minute

// NewMirror parses an http or https base URL ("https://mirror.example.org/packets").
func NewMirror(base string, client *http.Client) (*Mirror, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("mirror %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("mirror %q: want an http:// or https:// URL with a host", base)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror %q: a base URL has no query or fragment", base)
	}
	return &Mirror{Base: u, Client: client}, nil
}

// NewClient returns an http.Client for mirrors, with bounded dial, TLS
// handshake and response-header waits and a cap on response header size. It
// has no total timeout: the Fetcher bounds each attempt, scaled to the blob.
// Proxies come from the environment (https_proxy, no_proxy).
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}}
}

// String names the mirror in messages and Result.Source, without any
// password in its URL.
func (m *Mirror) String() string { return "mirror " + m.Base.Redacted() }

// url resolves a repository path ("packages/htop-3.3.0.tar.zst") against Base.
func (m *Mirror) url(path string) (*url.URL, error) {
	if !fs.ValidPath(path) || path == "." {
		return nil, fmt.Errorf("mirror path %q is not a clean relative path", path)
	}
	return m.Base.JoinPath(path), nil
}

// client returns Client with the mirror's redirect policy.
func (m *Mirror) client() *http.Client {
	c := http.Client{Transport: http.DefaultTransport}
	if m.Client != nil {
		c = *m.Client
	}
	c.CheckRedirect = m.checkRedirect
	return &c
}

// checkRedirect refuses redirects to another host (unless allowed), from
// https to http, and long chains.
func (m *Mirror) checkRedirect(req *http.Request, via []*http.Request) error {
	from := via[len(via)-1].URL
	refuse := func(why string) error {
		return &RedirectError{From: from.Redacted(), To: req.URL.Redacted(), Reason: why}
	}
	orig := via[0].URL
	switch {
	case len(via) >= maxRedirects:
		return refuse(fmt.Sprintf("more than %d redirects", maxRedirects))
	case orig.Scheme == "https" && req.URL.Scheme != "https":
		return refuse("downgrade from https")
	case !m.AllowCrossHost && !strings.EqualFold(req.URL.Host, orig.Host):
		return refuse("the mirror redirected to another host")
	}
	return nil
}

// request sends a GET for u and returns the response (nil on error).
func (m *Mirror) request(ctx context.Context, u *url.URL, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header = header
	// identity: offsets and sizes are the blob's own, never a gzip stream's.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "packets")
	resp, err := m.client().Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	return resp, nil
}

// Fetch writes blob w from offset on to dst, asking for the rest with a
// Range request when offset > 0. It reads at most w.Size-offset bytes of the
// body: a body that goes on is cut off and reported as a size mismatch; one
// that ends early is io.ErrUnexpectedEOF, which the Fetcher resumes.
func (m *Mirror) Fetch(ctx context.Context, w Want, dst io.Writer, offset int64) (int64, error) {
	u, err := m.url(w.Path)
	if err != nil {
		return 0, err
	}
	header := http.Header{}
	if offset > 0 {
		header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := m.request(ctx, u, header)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := checkBlobResponse(resp, w, offset); err != nil {
		return 0, err
	}
	return copyBody(dst, resp, w, offset)
}

// checkBlobResponse accepts 200 for a request from 0, and 206 with a
// matching Content-Range for a request from offset.
func checkBlobResponse(resp *http.Response, w Want, offset int64) error {
	u := resp.Request.URL.Redacted()
	switch code := resp.StatusCode; {
	case code == http.StatusOK && offset == 0:
		return nil
	case code == http.StatusOK:
		return fmt.Errorf("GET %s: the server ignored the range request: %w", u, ErrRestart)
	case code == http.StatusPartialContent:
		return checkContentRange(resp.Header.Get("Content-Range"), u, w, offset)
	case code == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("GET %s: range from %d not satisfiable: %w", u, offset, ErrRestart)
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("GET %s: %w", u, ErrNotFound)
	}
	return statusError(resp)
}

// checkContentRange checks "bytes first-last/total" against the request.
func checkContentRange(cr, u string, w Want, offset int64) error {
	var first, last int64
	var total string
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%s", &first, &last, &total); err != nil {
		return fmt.Errorf("GET %s: bad Content-Range %q: %w", u, cr, ErrRestart)
	}
	if total != "*" {
		n, err := strconv.ParseInt(total, 10, 64)
		if err != nil {
			return fmt.Errorf("GET %s: bad Content-Range %q: %w", u, cr, ErrRestart)
		}
		if n != w.Size {
			return fmt.Errorf("GET %s: %w", u, &packages.SizeMismatchError{What: w.String(), Want: w.Size, Got: n})
		}
	}
	if first != offset || last != w.Size-1 {
		return fmt.Errorf("GET %s: asked for bytes %d-%d, got %q: %w", u, offset, w.Size-1, cr, ErrRestart)
	}
	return nil
}

func statusError(resp *http.Response) error {
	e := &HTTPStatusError{URL: resp.Request.URL.Redacted(), Code: resp.StatusCode, Status: resp.Status}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// sniffLen is how much of a body is looked at to tell an HTML page.
const sniffLen = 512

// copyBufs keeps copyBody's buffers (io.Copy's size) between downloads.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// copyBody copies the rest of blob w, w.Size-offset bytes, from resp to dst,
// then makes sure the body ends there.
func copyBody(dst io.Writer, resp *http.Response, w Want, offset int64) (int64, error) {
	u := resp.Request.URL.Redacted()
	size := w.Size
	want := size - offset
	var n int64
	if offset == 0 {
		head := make([]byte, min(sniffLen, want))
		k, err := io.ReadFull(resp.Body, head)
		if looksHTML(head[:k], resp.Header.Get("Content-Type")) {
			return 0, &HTMLPageError{URL: u}
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return 0, err
		}
		k, err = dst.Write(head[:k])
		if n = int64(k); err != nil {
			return n, err
		}
	}
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	rest := want - n
	c, err := io.CopyBuffer(dst, io.LimitReader(resp.Body, rest), buf[:])
	n += c
	if err == nil && c < rest {
		err = io.EOF
	}
	if errors.Is(err, io.EOF) {
		return n, fmt.Errorf("GET %s: body ended after %d of %d bytes%s: %w",
			u, offset+n, size, lengthNote(resp, want), io.ErrUnexpectedEOF)
	}
	if err != nil {
		return n, err
	}
	// One byte more means a body longer than the index says: cut it off.
	var one [1]byte
	if k, _ := io.ReadFull(resp.Body, one[:]); k > 0 {
		return n, fmt.Errorf("GET %s: %w", u, &packages.SizeMismatchError{What: w.String(), Want: size, Got: -1})
	}
	return n, nil
}

// lengthNote explains a short body whose Content-Length disagreed with the
// index.
func lengthNote(resp *http.Response, want int64) string {
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return fmt.Sprintf(" (the server announced %d)", resp.ContentLength)
	}
	return ""
}

// looksHTML reports whether the first bytes of a body are an HTML page: by
// sniffing, or a text body labelled text/html. An archive never looks like
// either.
func looksHTML(head []byte, contentType string) bool {
	sniffed := http.DetectContentType(head)
	if strings.HasPrefix(sniffed, "text/html") {
		return true
	}
	return strings.HasPrefix(contentType, "text/html") && strings.HasPrefix(sniffed, "text/")
}

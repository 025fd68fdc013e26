package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mirrors is a repository's mirrors in configured order. As a Source it
// tries each once, resuming on the next where the previous stopped; a
// Fetcher given Mirrors.Sources() instead retries and blames each mirror on
// its own, which is what apply wants.
type Mirrors []*Mirror

// ParseMirrors builds Mirrors from config.toml's list of base URLs, all
// sharing client.
func ParseMirrors(bases []string, client *http.Client) (Mirrors, error) {
	ms := make(Mirrors, 0, len(bases))
	for _, b := range bases {
		m, err := NewMirror(b, client)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Sources returns the mirrors one by one, for Fetcher.Sources.
func (ms Mirrors) Sources() []Source {
	out := make([]Source, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// String lists the mirrors.
func (ms Mirrors) String() string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Base.Redacted()
	}
	return "mirrors " + strings.Join(s, ", ")
}

// Fetch gets blob w from the first mirror that has it, continuing on the next
// mirror from where a failed one stopped. Wrong bytes, restarts and local
// errors are returned at once, for the caller to decide.
func (ms Mirrors) Fetch(ctx context.Context, w Want, dst io.Writer, offset int64) (int64, error) {
	var n int64
	var errs []error
	for _, m := range ms {
		k, err := m.Fetch(ctx, w, dst, offset+n)
		n += k
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			return n, err
		}
		if o := classify(err); o != nextSource && o != retrySame {
			return n, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", m, err))
	}
	return n, &FetchError{What: w.String(), Errs: errs}
}

// Get reads a small file (release.toml, its signature, an index) from the
// first mirror that serves it, trying them in order. The size cap is
// enforced while reading, whatever Content-Length says; the file is held in
// memory. When every mirror answers 404 the error matches ErrNotFound.
func (ms Mirrors) Get(ctx context.Context, path string, maxSize int64) (io.ReadCloser, error) {
	var errs []error
	for _, m := range ms {
		b, err := m.Get(ctx, path, maxSize)
		if err == nil {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, &FetchError{What: path, Errs: errs}
}

// Get reads path from this mirror into memory, refusing more than maxSize
// bytes, an HTML page, a stall of StallTimeout and a request longer than
// Timeout. A 404 or 410 matches ErrNotFound.
func (m *Mirror) Get(ctx context.Context, path string, maxSize int64) ([]byte, error) {
	u, err := m.url(path)
	if err != nil {
		return nil, err
	}
	stall, timeout := m.StallTimeout, m.Timeout
	if stall <= 0 {
		stall = DefaultStall
	}
	if timeout <= 0 {
		timeout = defaultGetTimeout
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx, cancelTimeout := context.WithTimeoutCause(actx, timeout, &TimeoutError{After: timeout})
	defer cancelTimeout()
	watchdog := time.AfterFunc(stall, func() { cancel(&StallError{After: stall}) })
	defer watchdog.Stop()

	b, err := m.get(actx, u, maxSize, func() { watchdog.Reset(stall) })
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		// Our own watchdog or timeout ended the request: say which.
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), context.Cause(actx))
	}
	return b, err
}

func (m *Mirror) get(ctx context.Context, u *url.URL, maxSize int64, tick func()) ([]byte, error) {
	resp, err := m.request(ctx, u, http.Header{})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), ErrNotFound)
	default:
		return nil, statusError(resp)
	}
	tooLarge := &TooLargeError{URL: u.Redacted(), Max: maxSize}
	if resp.ContentLength > maxSize {
		return nil, tooLarge // announced too big: do not even start
	}
	b, err := io.ReadAll(&tickReader{r: io.LimitReader(resp.Body, maxSize+1), tick: tick})
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxSize {
		return nil, tooLarge
	}
	if looksHTML(b[:min(len(b), sniffLen)], resp.Header.Get("Content-Type")) {
		return nil, &HTMLPageError{URL: u.Redacted()}
	}
	return b, nil
}

// tickReader calls tick after every read that returned bytes: it feeds a
// stall watchdog.
type tickReader struct {
	r    io.Reader
	tick func()
}

func (t *tickReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.tick()
	}
	return n, err
}

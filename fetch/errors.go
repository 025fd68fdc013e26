package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/packets-dev/packets/packages"
)

// ErrNotFound says that a source does not have a blob or file. Sources return
// it wrapped; the Fetcher and Mirrors fall through to the next source.
var ErrNotFound = errors.New("not found")

// ErrRestart is returned (wrapped) by a source that cannot continue from the
// offset it was asked for: a server that ignored a Range request, answered
// 416, or sent another range. The caller discards what it holds and asks
// again from offset 0.
var ErrRestart = errors.New("cannot resume: restart from the beginning")

// HTTPStatusError is an HTTP answer that is neither the blob nor a "not found".
type HTTPStatusError struct {
	URL        string // redacted
	Code       int
	Status     string
	RetryAfter time.Duration // from a Retry-After header in seconds, 0 if absent
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("GET %s: %s", e.URL, e.Status)
}

// Retryable reports whether the server asked us to come back later: 5xx,
// 429 Too Many Requests, 408 Request Timeout.
func (e *HTTPStatusError) Retryable() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// StallError says that no byte arrived for After: a dead or slow-loris source.
type StallError struct {
	After time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("stalled: no data for %s", e.After)
}

// TimeoutError says that one attempt took longer than its total time limit.
type TimeoutError struct {
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("attempt took longer than %s", e.After)
}

// RedirectError says that a mirror redirected somewhere packets refuses to go:
// another host (unless Mirror.AllowCrossHost), from https to http, or too many
// hops.
type RedirectError struct {
	From, To string // redacted URLs
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("redirect from %s to %s refused: %s", e.From, e.To, e.Reason)
}

// HTMLPageError says that a mirror answered with an HTML page (a captive
// portal, a proxy's or CDN's error page) where a blob or signed file was
// expected. Digest and signature checks would reject it anyway; this says why.
type HTMLPageError struct {
	URL string // redacted
}

func (e *HTMLPageError) Error() string {
	return fmt.Sprintf("GET %s: mirror returned an HTML page, not the file", e.URL)
}

// TooLargeError says that a small signed file grew past the cap its caller set.
type TooLargeError struct {
	URL string // redacted
	Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("GET %s: larger than the %d bytes allowed", e.URL, e.Max)
}

// FetchError collects why every source failed for one blob or file. It
// unwraps to the sources' errors, except that ErrNotFound is reported (and
// matched by errors.Is) only when no source had the blob at all.
type FetchError struct {
	What string  // the blob ("htop@3.3.0") or the mirror path of a file
	Errs []error // one per source tried, each naming the source
}

func (e *FetchError) Error() string {
	if len(e.Errs) == 0 {
		return e.What + ": no source to fetch from"
	}
	if e.allNotFound() {
		return fmt.Sprintf("%s: not found on any source (%s)", e.What, joinErrs(e.Errs))
	}
	return fmt.Sprintf("%s: %s", e.What, joinErrs(e.Errs))
}

// Unwrap returns the sources' errors, leaving out "not found" answers when
// another source failed for a different reason.
func (e *FetchError) Unwrap() []error {
	if e.allNotFound() {
		return e.Errs
	}
	var out []error
	for _, err := range e.Errs {
		if !errors.Is(err, ErrNotFound) {
			out = append(out, err)
		}
	}
	return out
}

func (e *FetchError) allNotFound() bool {
	for _, err := range e.Errs {
		if !errors.Is(err, ErrNotFound) {
			return false
		}
	}
	return len(e.Errs) > 0
}

func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, err := range errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

// OfflineError says that offline mode was asked for and some blobs are not in
// the cache. It matches ErrNotFound.
type OfflineError struct {
	Missing []Want
}

func (e *OfflineError) Error() string {
	names := make([]string, len(e.Missing))
	for i, w := range e.Missing {
		names[i] = w.String()
	}
	return fmt.Sprintf("offline: %d not in the cache: %s", len(e.Missing), strings.Join(names, ", "))
}

// Unwrap makes an OfflineError match ErrNotFound.
func (e *OfflineError) Unwrap() error { return ErrNotFound }

// localError marks a failure of the local disk (the part file): no other
// source can fix it, so the Fetcher gives up on the blob at once.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// outcome is what the Fetcher does after an attempt failed.
type outcome int

const (
	nextSource  outcome = iota // this source cannot give the blob: try the next one
	retrySame                  // transient: back off and try the same source again, resuming
	restartSame                // discard the part and ask the same source again from 0
	mismatch                   // wrong bytes: discard the part, never retry this source
	giveUp                     // local failure: stop fetching this blob
)

// classify sorts an attempt's error, as apko does: never retry a mismatch;
// retry 5xx/429, timeouts, stalls, resets and truncated bodies. The caller
// checks its own context first: a cancelled run is never retried.
func classify(err error) outcome {
	var (
		digest   *packages.DigestMismatchError
		size     *packages.SizeMismatchError
		stall    *StallError
		timeout  *TimeoutError
		status   *HTTPStatusError
		local    *localError
		opErr    *net.OpError
		netErr   net.Error
		redirect *RedirectError
	)
	switch {
	case errors.As(err, &local):
		return giveUp
	case errors.Is(err, ErrRestart):
		return restartSame
	case errors.As(err, &digest), errors.As(err, &size):
		return mismatch
	case errors.As(err, &stall), errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return retrySame
	case errors.As(err, &status):
		if status.Retryable() {
			return retrySame
		}
		return nextSource
	case errors.Is(err, ErrNotFound), errors.As(err, &redirect):
		return nextSource
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &opErr),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return retrySame
	case errors.As(err, &netErr) && netErr.Timeout():
		return retrySame
	}
	return nextSource
}

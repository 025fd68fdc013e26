package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// download gets blob w through the sources in order into its part file,
// verifies it and moves it into the cache.
func (r *run) download(ctx context.Context, w Want) (Result, error) {
	c := r.f.Cache
	if len(r.f.Sources) == 0 {
		return Result{}, &FetchError{What: w.String()}
	}
	p, err := openPart(c.partPath(w.Digest), w)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", w, err)
	}
	defer p.close()
	done := func(source string) (Result, error) {
		if err := p.commit(c.Path(w.Digest)); err != nil {
			return Result{}, fmt.Errorf("%s: %w", w, err)
		}
		return Result{Want: w, Source: source, Path: c.Path(w.Digest)}, nil
	}

	// 1. A complete part left by an interrupted run only needs committing.
	if p.n == w.Size {
		if p.check() == nil {
			return done(SourceCache)
		}
		if err := p.reset(); err != nil {
			return Result{}, fmt.Errorf("%s: %w", w, err)
		}
	}

	// 2. Each source in turn, resuming from what the part holds.
	var errs []error
	for i, src := range r.f.Sources {
		if r.down[i].Load() {
			errs = append(errs, fmt.Errorf("%s: skipped after failing earlier in this run", src))
			continue
		}
		wrote, err := r.fromSource(ctx, src, w, p)
		if err == nil {
			// Logged only now: a failure that is returned is not logged. A
			// source that simply did not have the blob (a LAN without it)
			// is the normal case, not a fallback worth a warning.
			switch {
			case len(errs) > 0 && !allNotFound(errs):
				r.log.Warn("fell back to another source", "pkg", w.String(), "source", src.String(), "failed", joinErrs(errs))
			case len(errs) > 0:
				r.log.Debug("earlier sources do not have it", "pkg", w.String(), "source", src.String(), "failed", joinErrs(errs))
			}
			return done(src.String())
		}
		if ctx.Err() != nil {
			// Not the cause: under errgroup that is another blob's error.
			return Result{}, fmt.Errorf("%s: %w", w, ctx.Err())
		}
		switch classify(err) {
		case giveUp:
			return Result{}, fmt.Errorf("%s: %w", w, err)
		case retrySame:
			if wrote == 0 {
				r.down[i].Store(true)
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", src, err))
	}

	// Wrong bytes were reset as soon as they were found; what the part
	// still holds is a good prefix so far, kept for the next run to resume.
	return Result{}, &FetchError{What: w.String(), Errs: errs}
}

// fromSource tries src for blob w, with retries, until the part holds the
// whole verified blob. It returns how many bytes src wrote.
func (r *run) fromSource(ctx context.Context, src Source, w Want, p *part) (wrote int64, err error) {
	pol := r.f.Retry
	name := src.String()
	r.obs.Start(w, name)
	r.obs.Progress(w, p.n)
	wait := false
	for attempt := range pol.attempts() {
		if wait {
			if err := sleep(ctx, pol.backoff(attempt, err)); err != nil {
				return wrote, err
			}
		}
		wait = true
		// Remember whether every byte held came from src: only then can a
		// mismatch be blamed on it.
		if p.n == 0 {
			p.owner = name
		} else if p.owner != name {
			p.owner = ""
		}
		before := p.n
		err = r.attempt(ctx, src, w, p, pol)
		wrote += p.n - before
		if err == nil {
			if err = p.check(); err == nil {
				return wrote, nil
			}
		}
		if ctx.Err() != nil {
			return wrote, err
		}
		switch classify(err) {
		case restartSame:
			wait = false
		case mismatch:
			if p.owner == name {
				// Never retried from the same source.
				if rerr := p.reset(); rerr != nil {
					return wrote, rerr
				}
				return wrote, err
			}
			// Bytes from elsewhere (another source, an earlier run) were
			// mixed in: try src alone, from the start, before blaming it.
			wait = false
		case retrySame:
			r.log.Debug("retrying", "pkg", w.String(), "source", name, "attempt", attempt+1, "held", p.n, "err", err)
			continue
		default:
			return wrote, err
		}
		if rerr := p.reset(); rerr != nil {
			return wrote, rerr
		}
		r.obs.Progress(w, 0)
	}
	return wrote, err
}

// attempt runs one Source.Fetch from what the part holds, bounded by a stall
// watchdog and a total timeout.
func (r *run) attempt(ctx context.Context, src Source, w Want, p *part, pol RetryPolicy) error {
	if p.n == w.Size {
		return nil // a stall or timeout hit after the last byte: nothing to ask for
	}
	stall := pol.stall()
	timeout := pol.attemptTimeout(w.Size - p.n)
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx, cancelTimeout := context.WithTimeoutCause(actx, timeout, &TimeoutError{After: timeout})
	defer cancelTimeout()
	watchdog := time.AfterFunc(stall, func() { cancel(&StallError{After: stall}) })
	defer watchdog.Stop()
	p.onWrite = func(n int64) {
		watchdog.Reset(stall)
		r.obs.Progress(w, n)
	}
	defer func() { p.onWrite = nil }()

	_, err := src.Fetch(actx, w, p, p.n)
	switch {
	case err != nil && ctx.Err() == nil && actx.Err() != nil:
		// Our watchdog or timeout ended it, whatever the source made of that.
		return context.Cause(actx)
	case err != nil:
		return err
	case p.n < w.Size:
		return fmt.Errorf("%s ended after %d of %d bytes: %w", src, p.n, w.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

// allNotFound reports whether every error says the source lacks the blob.
func allNotFound(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, ErrNotFound) {
			return false
		}
	}
	return true
}

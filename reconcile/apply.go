package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
)

// Fetcher makes archives available locally, verified against the signed
// index. fetch.Fetcher (with LAN peers in front of the mirrors) satisfies it
// through a small adapter in cmd/packets.
type Fetcher interface {
	// Fetch gets every build's archive, verified; it returns where each came
	// from ("cache", a mirror URL, a peer). Nothing on the machine changes.
	// ready, when not nil, hears of each archive as soon as it is in the
	// cache and verified (from any goroutine, once per digest); the
	// archives are durable when Fetch returns.
	Fetch(ctx context.Context, builds []*packages.Available, ready func(d packages.Digest, source string)) (map[packages.Digest]string, error)
	// Open returns the bytes of an archive Fetch verified.
	Open(d packages.Digest) (io.ReadCloser, error)
}

// HookRunner runs one package hook (the Lua sandbox, in production) and
// returns the machine paths it created.
type HookRunner interface {
	RunHook(ctx context.Context, pkg *installed.Package, script string, src []byte) (created []string, err error)
	// SendHook starts a hook and returns at once (installed.HookSend):
	// the install hooks after a commit are handed over one ahead.
	SendHook(ctx context.Context, pkg *installed.Package, script string, src []byte) (wait func() (created []string, err error))
}

// Observer hears about an apply as it happens. The library never prints;
// the CLI renders these.
type Observer interface {
	Fetched(sources map[packages.Digest]string)
	ActionStarted(a Action)
	ActionDone(a Action, err error)
}

// Env is what Apply works with. DB and Layout are the machine; the rest are
// the seams cmd/packets wires.
type Env struct {
	DB       *installed.DB
	Layout   installed.Layout
	Fetcher  Fetcher
	Hooks    HookRunner
	Observer Observer
	Logger   *slog.Logger
	User     string           // recorded as installed_by
	Now      func() time.Time // nil: time.Now
}

// StalePlanError refuses to apply a plan computed against another
// generation of installed.db: something changed the machine in between, so
// the plan may be wrong. Compute a new plan instead.
type StalePlanError struct{ Planned, Now installed.Generation }

func (e *StalePlanError) Error() string {
	return fmt.Sprintf("the plan was computed against installed.db generation %d, but it is now at %d: plan again", e.Planned, e.Now)
}

// Result is what Apply did.
type Result struct {
	Sources map[packages.Digest]string // where each archive came from
	Notes   []string                   // things the operator must know (config files kept, ...)
	Failed  []ActionError              // actions whose install hook failed after the change committed
}

// ActionError is an action that failed after its change was committed.
type ActionError struct {
	Action Action
	Err    error
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Action.Kind, e.Action.Name, e.Err)
}

// Apply executes p. In order:
//  1. refuse a stale plan;
//  2. one transaction for the whole plan: fetch every archive and verify
//     its size and SHA-256 against the signed index while staging the
//     ones already here (validating every entry before it is written
//     under a temporary name, and that the archive holds the build the
//     index lists) — if anything is missing or wrong, the transaction is
//     aborted and nothing on the machine has changed; then run the old
//     builds' remove hooks, commit (the journal's decision point; from
//     there a crash rolls forward), run the new builds' install hooks;
//  3. record reason changes.
//
// An install hook that fails after the commit fails its action (reported in
// Result.Failed and the returned error) but not the others: their files are
// already in place.
func Apply(ctx context.Context, p *Plan, env Env) (*Result, error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	now, err := env.DB.Generation(ctx)
	if err != nil {
		return nil, err
	}
	if int64(now) != p.Generation {
		return nil, &StalePlanError{Planned: installed.Generation(p.Generation), Now: now}
	}
	res := &Result{Sources: map[packages.Digest]string{}}
	var fg *fetching
	if fetches := p.Fetches(); len(fetches) > 0 {
		fg = startFetch(ctx, env.Fetcher, fetches)
	}
	changes, err := buildChanges(ctx, p, env, fg)
	if err != nil {
		if fg != nil {
			fg.end(true)
		}
		return nil, err
	}
	switch {
	case len(changes) > 0:
		if err := runTx(ctx, p, env, changes, fg, res); err != nil {
			return res, err
		}
	case fg != nil: // cannot be: every fetch is a change's
		fg.end(true)
	}
	for _, a := range p.Actions {
		if a.Kind == Mark {
			if err := env.DB.SetReason(ctx, a.Name, reasonOf(a)); err != nil {
				return res, fmt.Errorf("mark %s: %w", a.Name, err)
			}
		}
	}
	if len(res.Failed) > 0 {
		errs := make([]error, len(res.Failed))
		for i := range res.Failed {
			errs[i] = &res.Failed[i]
		}
		return res, errors.Join(errs...)
	}
	return res, nil
}

func reasonOf(a Action) installed.Reason {
	if a.Explicit {
		return installed.ReasonExplicit
	}
	return installed.ReasonDependency
}

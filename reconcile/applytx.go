package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"strconv"
	"time"

	"github.com/packets-dev/packets/packages/installed"
)

// buildChanges turns the plan's file-changing actions into
// installed.Changes. It does not read the archives: staging waits for each
// one to be fetched (fg), reads it once, validating every entry before it
// writes it under a temporary name, checks that it holds the build the
// signed index listed (*packages.BuildMismatchError) and completes the
// receipt with its hooks and source. An archive refused there leaves the
// machine as it was.
func buildChanges(ctx context.Context, p *Plan, env Env, fg *fetching) ([]installed.Change, error) {
	snap, err := env.DB.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if env.Now != nil {
		now = env.Now
	}
	var changes []installed.Change
	for _, a := range p.Actions {
		if a.Kind == Mark {
			continue
		}
		c := installed.Change{Kind: changeKind(a.Kind), Options: a.Options}
		if a.From != nil {
			c.Old = snap.Packages[a.From.Name]
			if c.Old == nil {
				return nil, fmt.Errorf("%s %s: not installed any more: plan again", a.Kind, a.From.Name)
			}
		}
		if to := a.To; to != nil {
			c.New = &installed.Package{
				Name: to.Name, Version: to.Version, Family: to.Family, Serial: to.Serial,
				Description: to.Description, Dependencies: to.Dependencies,
				Repo: to.Repo, Digest: to.Digest, Size: to.Size, InstalledSize: to.InstalledSize,
				Reason: reasonOf(a), InstalledAt: now().UTC(), InstalledBy: env.User,
				Options: a.Options, DataDir: path.Join(env.Layout.DataDir, string(to.Name)),
			}
			c.Open = func() (io.ReadCloser, error) { return env.Fetcher.Open(to.Digest) }
			if fg != nil {
				c.Wait = func(ctx context.Context) (string, error) { return fg.wait(ctx, to.Digest) }
				c.Ready = func() bool { return fg.arrivedYet(to.Digest) }
			}
		}
		changes = append(changes, c)
	}
	return changes, nil
}

func changeKind(k Kind) installed.Kind {
	switch k {
	case Install:
		return installed.Install
	case Upgrade, Downgrade:
		return installed.Upgrade
	case Reinstall:
		return installed.Reinstall
	}
	return installed.Remove
}

// runTx runs the one transaction of an apply, the fetch fg (nil when there
// is nothing to fetch) running beside its staging. Before the commit, any
// error aborts it and the machine is as it was; after, install hook
// failures are collected per action.
func runTx(ctx context.Context, p *Plan, env Env, changes []installed.Change, fg *fetching, res *Result) error {
	run := installed.HookFunc(env.Hooks.RunHook)
	for _, a := range p.Actions {
		if a.Kind != Mark && env.Observer != nil {
			env.Observer.ActionStarted(a)
		}
	}
	tx, err := env.DB.Begin(ctx, env.Layout, changes)
	if err != nil {
		if fg != nil {
			fg.end(true)
		}
		return err
	}
	abort := func(err error) error {
		// The abort must run even if ctx was cancelled (SIGINT): it is what
		// puts the machine back.
		if aerr := tx.Abort(context.WithoutCancel(ctx)); aerr != nil {
			return fmt.Errorf("%w (and rolling back: %v)", err, aerr)
		}
		return err
	}
	start := time.Now()
	if err := stage(ctx, env, tx, fg, res); err != nil {
		return abort(err)
	}
	env.Logger.Debug("fetched and staged", "took", time.Since(start))
	start = time.Now()
	if err := tx.PreHooks(ctx, run); err != nil {
		return abort(err)
	}
	// From here on the change rolls forward, even after SIGINT: finishing is
	// what leaves the machine whole.
	ctx = context.WithoutCancel(ctx)
	if err := tx.Commit(ctx); err != nil {
		if !tx.Decided() { // refused before the decision point
			return abort(err)
		}
		return err
	}
	env.Logger.Debug("committed", "took", time.Since(start))
	res.Notes = append(res.Notes, KeptNotes(tx.Kept())...)
	start = time.Now()
	hookErrs := splitByPackage(tx.PostHooks(ctx, env.Hooks.SendHook))
	env.Logger.Debug("ran the install hooks", "took", time.Since(start))
	for _, a := range p.Actions {
		if a.Kind == Mark {
			continue
		}
		var err error
		if a.To != nil {
			err = hookErrs[a.To.Ref().String()]
		}
		if err != nil {
			res.Failed = append(res.Failed, ActionError{Action: a, Err: err})
		}
		if env.Observer != nil {
			env.Observer.ActionDone(a, err)
		}
	}
	return tx.Done(ctx)
}

// stage runs tx.Stage while fg fetches, then waits for the fetch to end
// (every archive durable in the cache) and reports where they came from.
// When both fail, the fetch's error is the one that matters: staging
// failed for want of an archive.
func stage(ctx context.Context, env Env, tx *installed.Tx, fg *fetching, res *Result) error {
	err := tx.Stage(ctx)
	if fg == nil {
		return err
	}
	sources, ferr := fg.end(err != nil)
	switch {
	case ferr != nil && (err == nil || !errors.Is(ferr, context.Canceled)):
		return ferr
	case err != nil:
		return err
	}
	res.Sources = sources
	if env.Observer != nil {
		env.Observer.Fetched(sources)
	}
	return nil
}

// KeptNotes tells the operator about config files an upgrade or removal
// kept because they had modified them.
func KeptNotes(kept []installed.KeptConfig) []string {
	var notes []string
	for _, k := range kept {
		if k.NewPath != "" {
			notes = append(notes, fmt.Sprintf("%s: kept your modified %s; the new version is %s", k.Package, k.Path, k.NewPath))
		} else {
			notes = append(notes, fmt.Sprintf("%s: kept your modified %s", k.Package, k.Path))
		}
	}
	return notes
}

// splitByPackage files the install hooks' joined errors under the package
// each belongs to ("name@version"); an error of no package is filed under "".
func splitByPackage(err error) map[string]error {
	out := map[string]error{}
	if err == nil {
		return out
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		key := ""
		var he *installed.HookError
		if errors.As(e, &he) {
			key = he.Ref.String()
		}
		out[key] = errors.Join(out[key], e)
	}
	return out
}

// CurrentUser names whoever runs packets, for the install receipt.
func CurrentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

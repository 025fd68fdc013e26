package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
)

// buildChanges turns the plan's file-changing actions into installed.Changes,
// reading each new archive once more, read-only, to check it is the build the
// signed index promised and to take its hooks for the receipt. An archive
// that fails here has changed nothing on the machine.
func buildChanges(ctx context.Context, p *Plan, env Env, sources map[packages.Digest]string) ([]installed.Change, error) {
	snap, err := env.DB.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var changes []installed.Change
	var news []Action // the actions whose receipts are made below, by change
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
		changes = append(changes, c)
		news = append(news, a)
	}
	// Validating the archives reads each one whole: do it on every core.
	errs := make([]error, len(changes))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, a := range news {
		if a.To == nil {
			continue
		}
		g.Go(func() error {
			pkg, err := receipt(ctx, a, env, sources[a.To.Digest])
			if err != nil {
				errs[i] = err
				return nil
			}
			digest := a.To.Digest
			changes[i].New = pkg
			changes[i].Open = func() (io.ReadCloser, error) { return env.Fetcher.Open(digest) }
			return nil
		})
	}
	g.Wait()
	// The first failure in plan order, whichever finished first.
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
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

// receipt inspects the archive of a.To and makes the install receipt.
func receipt(ctx context.Context, a Action, env Env, source string) (*installed.Package, error) {
	to := a.To
	rc, err := env.Fetcher.Open(to.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", a.Kind, to.Ref(), err)
	}
	defer rc.Close()
	contents, err := packages.Validate(rc, packages.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", a.Kind, to.Ref(), err)
	}
	m := contents.Manifest
	if m.Name != to.Name || m.Version != to.Version || m.Family != to.Family || m.Serial != to.Serial {
		return nil, &ArchiveMismatchError{Want: to, Got: m}
	}
	now := time.Now
	if env.Now != nil {
		now = env.Now
	}
	return &installed.Package{
		Name: m.Name, Version: m.Version, Family: m.Family, Serial: m.Serial,
		Description: m.Description, Dependencies: m.Dependencies,
		Repo: to.Repo, Digest: to.Digest, Size: to.Size, InstalledSize: contents.InstalledSize,
		Reason: reasonOf(a), InstalledAt: now().UTC(), InstalledBy: env.User, Source: source,
		Options: a.Options, InstallHook: string(contents.InstallHook), RemoveHook: string(contents.RemoveHook),
		DataDir: path.Join(env.Layout.DataDir, string(m.Name)),
	}, nil
}

// runTx runs the one transaction of an apply. Before the commit, any error
// aborts it and the machine is as it was; after, install hook failures are
// collected per action.
func runTx(ctx context.Context, p *Plan, env Env, changes []installed.Change, res *Result) error {
	run := installed.HookFunc(env.Hooks.RunHook)
	for _, a := range p.Actions {
		if a.Kind != Mark && env.Observer != nil {
			env.Observer.ActionStarted(a)
		}
	}
	tx, err := env.DB.Begin(ctx, env.Layout, changes)
	if err != nil {
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
	if err := tx.Stage(ctx); err != nil {
		return abort(err)
	}
	env.Logger.Debug("staged", "took", time.Since(start))
	start = time.Now()
	if err := tx.PreHooks(ctx, run); err != nil {
		return abort(err)
	}
	// From here on the change rolls forward, even after SIGINT: finishing is
	// what leaves the machine whole.
	ctx = context.WithoutCancel(ctx)
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	env.Logger.Debug("committed", "took", time.Since(start))
	res.Notes = append(res.Notes, KeptNotes(tx.Kept())...)
	start = time.Now()
	hookErrs := splitByPackage(tx.PostHooks(ctx, run))
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

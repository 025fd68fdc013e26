package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/reconcile"
)

// watchOptions are the flags of watch mode beyond apply's.
type watchOptions struct {
	debounce, resync time.Duration
}

func (o *watchOptions) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&o.debounce, "debounce", 0, "wait for `DURATION` of quiet after a change before applying (default from config, 300ms)")
	cmd.Flags().DurationVar(&o.resync, "resync", 0, "re-apply every `DURATION` even without changes, repairing drift (default from config, 5m)")
}

func newWatchCmd(app *App) *cobra.Command {
	var req applyRequest
	var wopts watchOptions
	cmd := &cobra.Command{
		Use:         "watch",
		Annotations: map[string]string{longRunning: "true"},
		Short:       "Apply, then keep the machine converged whenever the state changes",
		Long: `Reconcile once, then watch the state file's directory and state.d/: every
change (coalesced) re-reads everything and reconciles again. SIGHUP reconciles
now; a periodic resync repairs drift. A state file that does not parse keeps
the last good state and reports the error. A state that declares nothing is
never applied unless --allow-empty-state is given. --json writes NDJSON events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return app.runWatch(cmd.Context(), req, wopts)
		},
	}
	req.register(cmd)
	wopts.register(cmd)
	cmd.Flags().BoolVar(&req.allowEmptyState, "allow-empty-state", false, "allow a saved state that declares no package to remove everything")
	return cmd
}

// runWatch is packets watch and packets apply --watch.
func (a *App) runWatch(ctx context.Context, req applyRequest, wopts watchOptions) error {
	l, err := a.Layout()
	if err != nil {
		return err
	}
	req.watch = true
	triggers := make(chan string)
	stop, err := a.watchState(ctx, l.Host(l.StateFile), l.Host(l.StateDir), req.stateFile, triggers)
	if err != nil {
		return err
	}
	defer stop()
	cfg := reconcile.LoopConfig{Debounce: l.Watch.Debounce, Resync: l.Watch.Resync, Logger: a.logger}
	if wopts.debounce > 0 {
		cfg.Debounce = wopts.debounce
	}
	if wopts.resync > 0 {
		cfg.Resync = wopts.resync
	}
	var lastGood *desired.State
	run := func(ctx context.Context) (bool, error) {
		m, err := a.openMachine(ctx, machineOptions{write: true, lockTimeout: req.lockTimeout})
		if err != nil {
			return false, err // the lock busy, a disk error: worth retrying
		}
		defer m.close()
		want, stateErr := m.loadState(req.stateFile)
		if stateErr != nil {
			// Keep the last good state: report the error, and still repair
			// drift from what was last valid.
			stateErr = reconcile.Terminal(stateErr)
			if lastGood == nil {
				return false, stateErr
			}
			want = *lastGood
		} else {
			lastGood = &want
		}
		r := req
		r.runID = reconcile.RunID(ctx)
		// Repair drift too: a package whose files changed by hand is
		// reinstalled from its verified archive.
		drifted, err := m.driftedPackages(ctx, nil, true)
		if err != nil {
			return false, err
		}
		r.compute.Force = drifted
		changed, err := m.applyState(ctx, func() (desired.State, error) { return want, nil }, r)
		return changed, errors.Join(classify(err), stateErr)
	}
	return reconcile.Loop(ctx, cfg, triggers, run, a.loopEvents(req.json))
}

// driftedPackages lists the named packages (all when none) whose files
// differ from what was installed: by size, mode and mtime when fast, else
// by hash too. A config file the user edited is theirs, not drift.
func (m *machine) driftedPackages(ctx context.Context, names []packages.Name, fast bool) ([]packages.Name, error) {
	drift, err := m.db.Verify(ctx, m.root, names, fast)
	if err != nil || len(drift) == 0 {
		return nil, err
	}
	isConfig := map[string]bool{}
	loaded := map[packages.Name]bool{}
	var out []packages.Name
	for _, d := range drift {
		if !loaded[d.Package] {
			loaded[d.Package] = true
			files, err := m.db.Files(ctx, d.Package)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				isConfig[f.Path] = f.Config
			}
		}
		if !isConfig[d.Path] && !slices.Contains(out, d.Package) {
			out = append(out, d.Package)
		}
	}
	return out, nil
}

// classify marks the errors retrying cannot fix as terminal: the loop then
// waits for the next change instead of backing off.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		guard    *reconcile.RemovalGuardError
		digest   *packages.DigestMismatchError
		size     *packages.SizeMismatchError
		mismatch *packages.BuildMismatchError
		entry    *packages.EntryError
		state    *desired.Error
	)
	switch {
	case errors.As(err, &guard), errors.As(err, &digest), errors.As(err, &size),
		errors.As(err, &mismatch), errors.As(err, &entry), errors.As(err, &state):
		return reconcile.Terminal(err)
	}
	return err
}

// loopEvents reports each run: NDJSON with --json, else a line on stderr.
func (a *App) loopEvents(asJSON bool) func(reconcile.LoopEvent) {
	return func(ev reconcile.LoopEvent) {
		if asJSON {
			writeNDJSON(a.stdout, ev.JSON(time.Now()))
			return
		}
		switch {
		case ev.Err != nil && ev.Next > 0:
			fmt.Fprintf(a.stderr, "watch: run %d (%s) failed, retrying in %s: %v\n", ev.Run, ev.Trigger, ev.Next.Round(time.Millisecond), ev.Err)
		case ev.Err != nil:
			fmt.Fprintf(a.stderr, "watch: run %d (%s) failed, waiting for a change: %v\n", ev.Run, ev.Trigger, ev.Err)
		default:
			fmt.Fprintf(a.stderr, "watch: run %d (%s) done, changed: %v\n", ev.Run, ev.Trigger, ev.Changed)
		}
	}
}

func writeNDJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		w.Write(append(b, '\n'))
	}
}

// actionEvents writes one NDJSON event per action in watch --json mode.
type actionEvents struct {
	w       io.Writer
	run     int
	sources map[packages.Digest]string
}

// ActionEventJSON is one action's outcome in watch --json's NDJSON stream.
type ActionEventJSON struct {
	FormatVersion int       `json:"format_version"`
	Type          string    `json:"type"` // "action"
	Run           int       `json:"run"`
	Action        string    `json:"action"`
	Name          string    `json:"name"`
	Version       string    `json:"version,omitempty"`
	Source        string    `json:"source,omitempty"`
	OK            bool      `json:"ok"`
	Error         string    `json:"error,omitempty"`
	Time          time.Time `json:"time"`
}

func (e *actionEvents) Fetched(sources map[packages.Digest]string) { e.sources = sources }
func (e *actionEvents) ActionStarted(reconcile.Action)             {}
func (e *actionEvents) ActionDone(a reconcile.Action, err error) {
	ev := ActionEventJSON{FormatVersion: reconcile.JSONVersion, Type: "action", Run: e.run,
		Action: a.Kind.String(), Name: string(a.Name), OK: err == nil, Time: time.Now().UTC()}
	if a.To != nil {
		ev.Version, ev.Source = string(a.To.Version), e.sources[a.To.Digest]
	}
	if err != nil {
		ev.Error = err.Error()
	}
	writeNDJSON(e.w, ev)
}

// watchState turns changes under the state's directories, and SIGHUP, into
// triggers. It watches directories, never files: editors save by writing a
// new file and renaming it over the old one, which a watch on the file
// itself would lose. It never looks at what an event says (the loop is
// level-triggered), except to start watching state.d when it appears.
func (a *App) watchState(ctx context.Context, mainFile, dropins, override string, triggers chan<- string) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	dirs := []string{filepath.Dir(mainFile), dropins}
	if override != "" {
		dirs = []string{override}
		if fi, err := os.Stat(override); err == nil && !fi.IsDir() {
			dirs = []string{filepath.Dir(override)}
		}
	}
	watched := 0
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
		if err := w.Add(d); err == nil {
			watched++
		}
	}
	if watched == 0 {
		w.Close()
		return nil, fmt.Errorf("watch: none of %v exists", dirs)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	send := func(cause string) {
		select {
		case triggers <- cause:
		case <-ctx.Done():
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Name == dropins && ev.Has(fsnotify.Create) {
					_ = w.Add(dropins) // state.d appeared after we started
				}
				send(reconcile.TriggerChange)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				a.logger.Warn("watch", "err", err)
				send(reconcile.TriggerChange) // events may be lost: re-read everything
			case <-hup:
				send(reconcile.TriggerSignal)
			}
		}
	}()
	return func() {
		cancel()
		signal.Stop(hup)
		w.Close()
	}, nil
}

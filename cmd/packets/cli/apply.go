package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
	"github.com/packets-dev/packets/reconcile"
)

// applyRequest is one reconcile run as the commands ask for it.
type applyRequest struct {
	planOptions
	offline bool
	compute reconcile.Options
	// watch mode: no prompts, and an empty state is refused unless
	// allowEmptyState, whatever allowRemovals says.
	watch           bool
	allowEmptyState bool
	runID           int  // the watch run, for --json action events
	moving          bool // set by dataDirMigration: record the new data dir once applied
}

func (r *applyRequest) register(cmd *cobra.Command) {
	r.planOptions.register(cmd)
	cmd.Flags().BoolVar(&r.offline, "offline", false, "use only archives already in the cache")
}

func newApplyCmd(app *App) *cobra.Command {
	var req applyRequest
	var watch bool
	var wopts watchOptions
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the machine match the state: plan, confirm, then change it",
		Long: `Compute the plan (as packets plan does), show it, ask for confirmation on a
terminal (pipelines must pass --yes), fetch and verify every archive, and
only then change the machine, in one transaction.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch {
				return app.runWatch(cmd.Context(), req, wopts)
			}
			return app.runApply(cmd.Context(), req, nil, false)
		},
	}
	req.register(cmd)
	wopts.register(cmd)
	cmd.Flags().BoolVar(&watch, "watch", false, "keep applying whenever the state changes (packets watch)")
	cmd.Flags().BoolVar(&req.allowEmptyState, "allow-empty-state", false, "with --watch: allow a saved state that declares no package")
	return cmd
}

// runApply opens the machine for writing, runs edit (the state file edits
// of install and remove) under the same lock, and reconciles unless noApply.
func (a *App) runApply(ctx context.Context, req applyRequest, edit func(*machine, *applyRequest) error, noApply bool) error {
	m, err := a.openMachine(ctx, machineOptions{write: true, lockTimeout: req.lockTimeout})
	if err != nil {
		return err
	}
	if edit != nil {
		if err := edit(m, &req); err != nil {
			return err
		}
	}
	if noApply {
		return nil
	}
	changed, err := m.apply(ctx, req)
	if err != nil {
		return err
	}
	if req.detailedExitcode && changed {
		return exitCode(ExitChanges)
	}
	return nil
}

// apply plans, shows, confirms and applies; it reports whether anything changed.
func (m *machine) apply(ctx context.Context, req applyRequest) (bool, error) {
	return m.applyState(ctx, func() (desired.State, error) { return m.loadState(req.stateFile) }, req)
}

// applyState is apply with the state read by load.
func (m *machine) applyState(ctx context.Context, load func() (desired.State, error), req applyRequest) (bool, error) {
	// The state, installed.db and the indexes are independent reads: side
	// by side. The catalogue is read for what the first two reach: for the
	// installed packages while the state file is still being parsed, then
	// for the state. When the installed packages alone would make the
	// indexes read whole, they are read whole at once, beside installed.db's
	// receipts, and are the catalogue: a plan over the whole catalogue is
	// the plan over what it reaches (reconcile.LoadCatalog).
	var (
		want     desired.State
		have     reconcile.Have
		ixs      *syncedIndexes
		errs     [3]error // reported in this order, whichever failed first
		counted  = make(chan int, 1)
		haveRead = make(chan struct{})
		wg       sync.WaitGroup
	)
	defer func() {
		if ixs != nil {
			ixs.close()
		}
	}()
	wg.Go(func() { want, errs[0] = load() })
	wg.Go(func() {
		defer close(haveRead)
		// How many are installed tells the indexes' reader whether to read
		// them whole; should counting fail, Brief says why.
		if n, err := m.installedCount(ctx); err == nil {
			counted <- n
		}
		close(counted)
		have, errs[1] = m.have(ctx)
	})
	var (
		catl *reconcile.CatalogLoader
		cat  *reconcile.MemCatalog
	)
	wg.Go(func() {
		if ixs, errs[2] = m.app.openIndexes(); errs[2] != nil {
			return
		}
		if n, ok := <-counted; ok {
			if errs[2] = ixs.preload(ctx, n); errs[2] != nil {
				return
			}
			if builds, ok := ixs.whole(); ok {
				cat = reconcile.NewMemCatalog(ixs.priority, builds)
				m.app.logger.Debug("catalogue: every index read whole", "builds", len(builds))
				return
			}
		}
		catl = m.app.catalogLoader(ctx, ixs)
		if <-haveRead; errs[1] == nil {
			errs[2] = catl.AddHave(ctx, have)
		}
	})
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return false, err
		}
	}
	if cat == nil {
		if err := catl.AddState(ctx, want); err != nil {
			return false, err
		}
		cat = catl.Catalog()
	}
	if err := m.dataDirMigration(ctx, have, &req); err != nil {
		return false, err
	}
	p, err := reconcile.ComputeWith(want, have, cat, req.compute)
	if err != nil {
		return false, err
	}
	p.Warnings = append(slices.Clone(ixs.warnings), p.Warnings...) // as plan shows them
	if err := reconcile.CheckRemovals(p, m.guardOptions(req.allowRemovals)); err != nil {
		return false, err
	}
	if req.watch && !req.allowEmptyState && p.Declared == 0 && p.Count(reconcile.Remove) > 0 {
		// Stricter in watch mode: nobody is there to notice a file saved
		// empty by accident, so only an explicit flag allows it.
		return false, &reconcile.RemovalGuardError{Removals: p.Count(reconcile.Remove), Managed: p.Managed, EmptyState: true}
	}
	if !req.json {
		p.Render(m.app.stdout, m.app.colorOut())
	}
	if !p.Changes() {
		if req.json && !req.watch {
			return false, writeJSON(m.app.stdout, applyJSON(p, nil, nil))
		}
		return false, nil
	}
	if !req.watch {
		if err := m.app.confirm("Apply these changes?"); err != nil {
			return false, err
		}
	}
	obs := m.app.applyObserver(req.json && !req.watch)
	if req.watch && req.json {
		obs = &actionEvents{w: m.app.stdout, run: req.runID}
	}
	hooks := m.hookRunner()
	if p.RunsInstallHooks() {
		hooks.prestart(ctx) // while the archives are fetched and staged
	}
	res, err := reconcile.Apply(ctx, p, reconcile.Env{
		DB: m.db, Layout: m.installedLayout(), Fetcher: m.fetcher(req.offline), Hooks: hooks,
		Observer: obs, Logger: m.app.logger, User: reconcile.CurrentUser(),
	})
	if err == nil && req.moving {
		err = m.db.SetMeta(ctx, installed.MetaDataDir, m.layout.DataDir)
	}
	if res != nil {
		// One backup per apply that changed something: the repair path
		// should installed.db ever be damaged (packets db restore).
		if berr := m.db.Backup(ctx); berr != nil {
			m.app.logger.Warn("back up installed.db", "err", berr)
		}
	}
	if req.json && !req.watch {
		if jerr := writeJSON(m.app.stdout, applyJSON(p, res, err)); jerr != nil {
			return true, jerr
		}
	} else if res != nil {
		m.app.renderApplyResult(p, res, err)
	}
	return res != nil, err
}

func newInstallCmd(app *App) *cobra.Command {
	var req applyRequest
	var noApply bool
	cmd := &cobra.Command{
		Use:   "install NAME[@CONSTRAINT]...",
		Short: "Declare packages in the state file, then apply",
		Long: `Add a package block for each NAME to the state file (keeping its comments and
formatting), then apply. NAME@CONSTRAINT pins a version, as in hello@">= 1.1".
With --no-apply only the state file changes.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runApply(cmd.Context(), req, func(m *machine, _ *applyRequest) error { return m.declare(cmd.Context(), args) }, noApply)
		},
	}
	req.register(cmd)
	cmd.Flags().BoolVar(&noApply, "no-apply", false, "only edit the state file")
	return cmd
}

func newRemoveCmd(app *App) *cobra.Command {
	var req applyRequest
	var noApply bool
	cmd := &cobra.Command{
		Use:   "remove NAME...",
		Short: "Delete packages' blocks from the state file, then apply",
		Long: `Delete each NAME's package block from the state file that declares it, then
apply. A package still needed by another stays installed, as a dependency.
With --no-apply only the state file changes.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runApply(cmd.Context(), req, func(m *machine, _ *applyRequest) error { return m.undeclare(args) }, noApply)
		},
	}
	req.register(cmd)
	cmd.Flags().BoolVar(&noApply, "no-apply", false, "only edit the state file")
	return cmd
}

func newUpgradeCmd(app *App) *cobra.Command {
	var req applyRequest
	var force, noSync bool
	cmd := &cobra.Command{
		Use:   "upgrade [NAME...]",
		Short: "Sync, then apply upgrades (only of the named packages, when names are given)",
		Long: `Sync every repository, then apply. With names, only those installed packages
may move to another build; the others stay as they are. --force reinstalls the
named packages from their verified archives even when nothing changed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if force && len(args) == 0 {
				return fmt.Errorf("upgrade --force needs the NAMEs of the packages to reinstall")
			}
			names, err := parseNames(args)
			if err != nil {
				return err
			}
			if !noSync && !req.offline {
				if err := app.syncAll(cmd.Context(), ""); err != nil {
					return err
				}
			}
			if len(names) > 0 {
				req.compute.Upgrade = names
			}
			if force {
				req.compute.Force = names
			}
			return app.runApply(cmd.Context(), req, nil, false)
		},
	}
	req.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "reinstall the named packages (xipkg's force-upgrade)")
	cmd.Flags().BoolVar(&noSync, "no-sync", false, "do not sync first")
	return cmd
}

func parseNames(args []string) ([]packages.Name, error) {
	names := make([]packages.Name, 0, len(args))
	for _, a := range args {
		n, err := packages.ParseName(a)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}

func newWhyCmd(app *App) *cobra.Command {
	var stateFile string
	cmd := &cobra.Command{
		Use:   "why NAME",
		Short: "Explain why a package is, or would be, installed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := packages.ParseName(args[0])
			if err != nil {
				return err
			}
			m, err := app.openMachine(cmd.Context(), machineOptions{allowMissing: true})
			if err != nil {
				return err
			}
			want, err := m.loadState(stateFile)
			if err != nil {
				return err
			}
			have, err := m.have(cmd.Context())
			if err != nil {
				return err
			}
			cat, _, err := app.catalog(cmd.Context())
			if err != nil {
				return err
			}
			lines, err := reconcile.Why(want, have, cat, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(app.stdout, strings.Join(lines, "\n"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&stateFile, "file", "f", "", "read the desired state from `FILE` or a directory")
	return cmd
}

// dataDirMigration notices that data_dir changed in config.toml since the
// packages were installed (installed.db remembers the last one) and, once
// confirmed, reinstalls every package under the new one; their hooks run
// again, so what they placed in the bin dir points to the new place.
func (m *machine) dataDirMigration(ctx context.Context, have reconcile.Have, req *applyRequest) error {
	last, ok, err := m.db.Meta(ctx, installed.MetaDataDir)
	if err != nil || !ok || last == m.layout.DataDir || len(have.Packages) == 0 {
		return err
	}
	question := fmt.Sprintf("data_dir changed from %s to %s: move the %d installed packages there?", last, m.layout.DataDir, len(have.Packages))
	if req.watch && !m.app.yes {
		return reconcile.Terminal(fmt.Errorf("%s run packets apply to confirm, or watch with --yes", question))
	}
	fmt.Fprintln(m.app.stdout, question)
	if err := m.app.confirm("Move them?"); err != nil {
		return err
	}
	for name := range have.Packages {
		req.compute.Force = append(req.compute.Force, name)
	}
	slices.Sort(req.compute.Force)
	req.moving = true
	return nil
}

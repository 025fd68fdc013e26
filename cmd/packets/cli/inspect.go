package cli

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
	"github.com/packets-dev/packets/reconcile"
)

// Commands that read installed.db: list, files, owns, verify.

// PackageJSON is one installed package in list --json and info --json.
type PackageJSON struct {
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	Family        string            `json:"family"`
	Serial        int64             `json:"serial"`
	Reason        string            `json:"reason"`
	Repo          string            `json:"repo"`
	SHA256        string            `json:"sha256"`
	Size          int64             `json:"size"`
	InstalledSize int64             `json:"installed_size"`
	InstalledAt   time.Time         `json:"installed_at"`
	InstalledBy   string            `json:"installed_by"`
	Source        string            `json:"source"`
	Key           string            `json:"key,omitempty"`
	Dependencies  []string          `json:"dependencies"`
	Options       map[string]string `json:"options,omitempty"`
}

func packageJSON(p *installed.Package) PackageJSON {
	deps := []string{}
	for _, d := range p.Dependencies {
		deps = append(deps, d.String())
	}
	return PackageJSON{
		Name: string(p.Name), Version: string(p.Version), Family: string(p.Family), Serial: p.Serial,
		Reason: string(p.Reason), Repo: p.Repo, SHA256: p.Digest.String(), Size: p.Size,
		InstalledSize: p.InstalledSize, InstalledAt: p.InstalledAt, InstalledBy: p.InstalledBy,
		Source: p.Source, Key: p.Key, Dependencies: deps, Options: p.Options,
	}
}

func newListCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List installed packages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := app.openMachine(cmd.Context(), machineOptions{allowMissing: true})
			if err != nil {
				return err
			}
			var pkgs []*installed.Package
			if m.db != nil {
				snap, err := m.db.Snapshot(cmd.Context())
				if err != nil {
					return err
				}
				for _, name := range slices.Sorted(maps.Keys(snap.Packages)) {
					pkgs = append(pkgs, snap.Packages[name])
				}
			}
			if asJSON {
				doc := struct {
					FormatVersion int           `json:"format_version"`
					Packages      []PackageJSON `json:"packages"`
				}{reconcile.JSONVersion, []PackageJSON{}}
				for _, p := range pkgs {
					doc.Packages = append(doc.Packages, packageJSON(p))
				}
				return writeJSON(app.stdout, doc)
			}
			if len(pkgs) == 0 {
				fmt.Fprintln(app.stdout, "No packages installed.")
				return nil
			}
			tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSERIAL\tREASON\tSIZE")
			for _, p := range pkgs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Name, p.Version, p.Serial, p.Reason, reconcile.HumanBytes(p.InstalledSize))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a versioned JSON document")
	return cmd
}

func newFilesCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "files NAME",
		Short: "List the files an installed package owns (hook-created ones included)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := packages.ParseName(args[0])
			if err != nil {
				return err
			}
			m, err := app.openMachine(cmd.Context(), machineOptions{})
			if err != nil {
				return err
			}
			if _, err := m.db.Package(cmd.Context(), name); err != nil {
				return err
			}
			files, err := m.db.Files(cmd.Context(), name)
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(app.stdout, f.Path)
			}
			return nil
		},
	}
}

func newOwnsCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "owns PATH",
		Short: "Print the package that owns PATH (exit 1 when none does)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := path.Clean("/" + args[0])
			m, err := app.openMachine(cmd.Context(), machineOptions{allowMissing: true})
			if err != nil {
				return err
			}
			if m.db != nil {
				name, ok, err := m.db.Owner(cmd.Context(), p)
				if err != nil {
					return err
				}
				if ok {
					fmt.Fprintln(app.stdout, name)
					return nil
				}
			}
			fmt.Fprintf(app.stderr, "%s is not owned by any package\n", p)
			return exitCode(ExitError)
		},
	}
}

func newVerifyCmd(app *App) *cobra.Command {
	var fast, repair bool
	cmd := &cobra.Command{
		Use:   "verify [NAME...]",
		Short: "Check that installed files are as installed (exit 1 on any difference)",
		Long: `Check every file the named packages (default: all) own: present, with the
recorded type, mode and SHA-256. --fast compares size, mode and mtime only.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := parseNames(args)
			if err != nil {
				return err
			}
			if repair {
				return app.repair(cmd.Context(), names, fast)
			}
			m, err := app.openMachine(cmd.Context(), machineOptions{allowMissing: true})
			if err != nil {
				return err
			}
			if m.db == nil {
				fmt.Fprintln(app.stdout, "No packages installed.")
				return nil
			}
			drift, err := m.db.Verify(cmd.Context(), m.root, names, fast)
			if err != nil {
				return err
			}
			for _, d := range drift {
				fmt.Fprintf(app.stdout, "%s: %s: %s\n", d.Package, d.Path, d.Problem)
			}
			if len(drift) > 0 {
				fmt.Fprintf(app.stderr, "%d difference(s) found; packets verify --repair reinstalls the packages that differ\n", len(drift))
				return exitCode(ExitError)
			}
			fmt.Fprintln(app.stdout, "All installed files verified.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&fast, "fast", false, "compare size, mode and mtime only (no hashing)")
	cmd.Flags().BoolVar(&repair, "repair", false, "reinstall every package that differs, from its verified archive")
	return cmd
}

// repair reinstalls the packages whose files drifted (config files the user
// edited aside) from their verified archives: the cache, else the mirrors.
func (a *App) repair(ctx context.Context, names []packages.Name, fast bool) error {
	var req applyRequest
	req.lockTimeout = 30 * time.Second
	return a.runApply(ctx, req, func(m *machine, req *applyRequest) error {
		drifted, err := m.driftedPackages(ctx, names, fast)
		if err != nil {
			return err
		}
		if len(drifted) == 0 {
			fmt.Fprintln(a.stdout, "All installed files verified; nothing to repair.")
		}
		req.compute.Force = drifted
		return nil
	}, false)
}

func newCacheCmd(app *App) *cobra.Command {
	c := &cobra.Command{Use: "cache", Short: "Manage the archive cache"}
	c.AddCommand(&cobra.Command{
		Use:   "clean",
		Short: "Delete cached archives that no installed package needs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := app.openMachine(cmd.Context(), machineOptions{write: true, lockTimeout: 30 * time.Second})
			if err != nil {
				return err
			}
			snap, err := m.db.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			keep := map[packages.Digest]bool{}
			for _, p := range snap.Packages {
				keep[p.Digest] = true
			}
			removed, freed, err := m.cache().Clean(keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.stdout, "removed %d archive(s), freed %s\n", removed, reconcile.HumanBytes(freed))
			return nil
		},
	})
	return c
}

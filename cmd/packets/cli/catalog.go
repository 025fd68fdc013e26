package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/index"
	"github.com/packets-dev/packets/packages/installed"
	"github.com/packets-dev/packets/reconcile"
)

// Commands that read the synced catalogue: search, info.

// eachIndex calls fn with every synced repository's index, in priority order.
func (a *App) eachIndex(ctx context.Context, fn func(repo string, ix *index.Index) error) error {
	l, err := a.Layout()
	if err != nil {
		return err
	}
	synced := 0
	for _, repo := range l.RepoNames() {
		ix, err := index.OpenSynced(l.Host(l.LibDir), repo)
		if errors.Is(err, index.ErrNotSynced) {
			continue
		}
		if err != nil {
			return err
		}
		synced++
		ix.SetDataDir(l.DataDir)
		err = fn(repo, ix)
		ix.Close()
		if err != nil {
			return err
		}
	}
	if synced == 0 {
		return errors.New("no repository has been synced yet: run packets sync URL")
	}
	return nil
}

// AvailableJSON is one catalogue build in search --json and info --json.
type AvailableJSON struct {
	Name          string   `json:"name"`
	Version       string   `json:"version"`
	Family        string   `json:"family"`
	Serial        int64    `json:"serial"`
	Repo          string   `json:"repo"`
	Description   string   `json:"description"`
	Author        string   `json:"author"`
	Dependencies  []string `json:"dependencies"`
	Filename      string   `json:"filename"`
	SHA256        string   `json:"sha256"`
	Size          int64    `json:"size"`
	InstalledSize int64    `json:"installed_size"`
	Path          string   `json:"path,omitempty"` // search --file: the matching installed path
}

func availableJSON(b packages.Available, repo string) AvailableJSON {
	deps := []string{}
	for _, d := range b.Dependencies {
		deps = append(deps, d.String())
	}
	return AvailableJSON{
		Name: string(b.Name), Version: string(b.Version), Family: string(b.Family), Serial: b.Serial,
		Repo: repo, Description: b.Description, Author: b.Author, Dependencies: deps,
		Filename: b.Filename, SHA256: b.Digest.String(), Size: b.Size, InstalledSize: b.InstalledSize,
	}
}

func newSearchCmd(app *App) *cobra.Command {
	var byFile, asJSON bool
	cmd := &cobra.Command{
		Use:   "search TERM | search --file PATH",
		Short: "Search the catalogue by name and description, or by a file a package installs",
		Long: `Search every synced repository. With --file, PATH is matched as a suffix of the
paths packages install, at a path-component boundary: "bin/htop" finds the
package that installs /opt/packets/htop/data/bin/htop, before it is installed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var found []AvailableJSON
			err := app.eachIndex(cmd.Context(), func(repo string, ix *index.Index) error {
				if byFile {
					matches, err := ix.SearchFile(cmd.Context(), args[0])
					for _, m := range matches {
						j := availableJSON(m.Package, repo)
						j.Path = m.Path
						found = append(found, j)
					}
					return err
				}
				hits, err := ix.Search(cmd.Context(), args[0])
				for _, h := range hits {
					found = append(found, availableJSON(h, repo))
				}
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				if found == nil {
					found = []AvailableJSON{}
				}
				return writeJSON(app.stdout, struct {
					FormatVersion int             `json:"format_version"`
					Results       []AvailableJSON `json:"results"`
				}{reconcile.JSONVersion, found})
			}
			if len(found) == 0 {
				fmt.Fprintf(app.stderr, "nothing matches %q\n", args[0])
				return exitCode(ExitError)
			}
			tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
			for _, f := range found {
				last := f.Description
				if byFile {
					last = f.Path
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, f.Version, last)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&byFile, "file", false, "find the packages that install a path ending in TERM")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a versioned JSON document")
	return cmd
}

func newInfoCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "Show a package: its install receipt, and what the catalogue offers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := packages.ParseName(args[0])
			if err != nil {
				return err
			}
			return app.info(cmd.Context(), name, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a versioned JSON document")
	return cmd
}

func (a *App) info(ctx context.Context, name packages.Name, asJSON bool) error {
	var receipt *installed.Package
	m, err := a.openMachine(ctx, machineOptions{allowMissing: true})
	if err != nil {
		return err
	}
	if m.db != nil {
		p, err := m.db.Package(ctx, name)
		if err == nil {
			receipt = p
		} else if !errors.Is(err, installed.ErrNotInstalled) {
			return err
		}
	}
	var offered []AvailableJSON
	err = a.eachIndex(ctx, func(repo string, ix *index.Index) error {
		builds, err := ix.Lookup(ctx, name)
		for _, b := range builds {
			offered = append(offered, availableJSON(b, repo))
		}
		return err
	})
	if err != nil && receipt == nil {
		return err
	}
	if receipt == nil && len(offered) == 0 {
		return fmt.Errorf("package %s is neither installed nor in the catalogue", name)
	}
	if asJSON {
		doc := struct {
			FormatVersion int             `json:"format_version"`
			Installed     *PackageJSON    `json:"installed"`
			Available     []AvailableJSON `json:"available"`
		}{FormatVersion: reconcile.JSONVersion, Available: offered}
		if doc.Available == nil {
			doc.Available = []AvailableJSON{}
		}
		if receipt != nil {
			j := packageJSON(receipt)
			doc.Installed = &j
		}
		return writeJSON(a.stdout, doc)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if r := receipt; r != nil {
		fmt.Fprintf(tw, "Name:\t%s\nVersion:\t%s (serial %d)\nFamily:\t%s\nDescription:\t%s\n", r.Name, r.Version, r.Serial, r.Family, r.Description)
		fmt.Fprintf(tw, "Depends on:\t%s\nInstalled:\t%s by %s, %s\n", depList(r.Dependencies), r.InstalledAt.Format("2006-01-02 15:04:05 MST"), r.InstalledBy, r.Reason)
		fmt.Fprintf(tw, "Installed size:\t%s\nFrom:\t%s\nArchive:\t%s (%s)\n", reconcile.HumanBytes(r.InstalledSize), r.Source, r.Digest, reconcile.HumanBytes(r.Size))
		if r.Key != "" {
			fmt.Fprintf(tw, "Verified by key:\t%s\n", r.Key)
		}
	}
	for _, o := range offered {
		fmt.Fprintf(tw, "\nAvailable:\t%s %s (serial %d) from repository %s\n", o.Name, o.Version, o.Serial, repoName(o.Repo))
		if receipt == nil {
			fmt.Fprintf(tw, "Family:\t%s\nDescription:\t%s\nAuthor:\t%s\nDepends on:\t%s\n", o.Family, o.Description, o.Author, strings.Join(o.Dependencies, ", "))
		}
		fmt.Fprintf(tw, "Archive:\t%s, %s, sha256 %s\nInstalled size:\t%s\n", o.Filename, reconcile.HumanBytes(o.Size), o.SHA256, reconcile.HumanBytes(o.InstalledSize))
	}
	return tw.Flush()
}

func depList(deps []packages.Dependency) string {
	if len(deps) == 0 {
		return "-"
	}
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = d.String()
	}
	return strings.Join(parts, ", ")
}

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/packets-dev/packets/reconcile"
)

// planOptions are the flags plan and apply share.
type planOptions struct {
	stateFile        string
	json             bool
	detailedExitcode bool
	allowRemovals    bool
	lockTimeout      time.Duration
}

func (o *planOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.stateFile, "file", "f", "", "read the desired state from `FILE` or a directory of *.hcl (default: state.hcl and state.d/)")
	f.BoolVar(&o.json, "json", false, "print a versioned JSON document instead of text")
	f.BoolVar(&o.detailedExitcode, "detailed-exitcode", false, "exit 2 when there are (plan) or were (apply) changes, 0 when none")
	f.BoolVar(&o.allowRemovals, "allow-removals", false, "allow a plan that removes every managed package, or more than the limit")
	f.DurationVar(&o.lockTimeout, "lock-timeout", 30*time.Second, "wait up to `DURATION` for another packets command to finish")
}

func newPlanCmd(app *App) *cobra.Command {
	var opts planOptions
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change, and change nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := app.openMachine(cmd.Context(), machineOptions{allowMissing: true})
			if err != nil {
				return err
			}
			p, err := m.plan(cmd.Context(), opts.stateFile)
			if err != nil {
				return err
			}
			guardErr := reconcile.CheckRemovals(p, m.guardOptions(opts.allowRemovals))
			if guardErr != nil {
				p.Warnings = append(p.Warnings, "apply would refuse this plan: "+guardErr.Error())
			}
			if err := app.renderPlan(p, opts.json); err != nil {
				return err
			}
			if opts.detailedExitcode && p.Changes() {
				return exitCode(ExitChanges)
			}
			return nil
		},
	}
	opts.register(cmd)
	return cmd
}

// plan reads the state, installed.db and the catalogue, and computes.
func (m *machine) plan(ctx context.Context, stateFile string) (*reconcile.Plan, error) {
	want, err := m.loadState(stateFile)
	if err != nil {
		return nil, err
	}
	have, err := m.have(ctx)
	if err != nil {
		return nil, err
	}
	cat, warnings, err := m.app.catalogFor(ctx, want, have)
	if err != nil {
		return nil, err
	}
	p, err := reconcile.Compute(want, have, cat)
	if err != nil {
		return nil, err
	}
	p.Warnings = append(warnings, p.Warnings...)
	return p, nil
}

func (m *machine) guardOptions(allow bool) reconcile.GuardOptions {
	return reconcile.GuardOptions{AllowRemovals: allow, MaxRemovals: m.layout.MaxRemovals}
}

func (a *App) renderPlan(p *reconcile.Plan, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, p.JSON())
	}
	p.Render(a.stdout, a.colorOut())
	return nil
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// confirm asks a person to go ahead. It never asks when stdin is not a
// terminal: a pipeline must say --yes.
func (a *App) confirm(question string) error {
	if a.yes {
		return nil
	}
	if !a.interactive() {
		return errors.New("not applying without confirmation: stdin is not a terminal; pass --yes to apply from a script")
	}
	fmt.Fprintf(a.stdout, "\n%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errors.New("apply cancelled")
}

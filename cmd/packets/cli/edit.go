package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/reconcile"
)

// declare adds NAME[@CONSTRAINT] blocks to the main state file. A name that
// is neither declared nor offered by any synced repository is refused before
// the file is touched, with a suggestion when one is close.
func (m *machine) declare(ctx context.Context, args []string) error {
	file := m.stateFileForEdit()
	want, err := m.loadState("")
	if err != nil {
		return err
	}
	cat, _, err := m.app.catalog(ctx)
	if err != nil {
		return err
	}
	type decl struct {
		name packages.Name
		c    packages.Constraint
	}
	var decls []decl
	for _, arg := range args {
		nameStr, cons, _ := strings.Cut(arg, "@")
		name, err := packages.ParseName(nameStr)
		if err != nil {
			return err
		}
		c, err := packages.ParseConstraint(cons)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		if _, declared := want.Packages[name]; !declared && len(cat.Named(name)) == 0 {
			msg := fmt.Sprintf("package %s is not in the catalogue", name)
			if s := reconcile.Suggest(string(name), cat.Names()); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			return fmt.Errorf("%s; run packets sync if it was added recently", msg)
		}
		decls = append(decls, decl{name, c})
	}
	if err := ensureDir(file); err != nil {
		return err
	}
	main, dropins := m.layout.Host(m.layout.StateFile), m.layout.Host(m.layout.StateDir)
	for _, d := range decls {
		// A package declared in a state.d file is edited there, never
		// declared a second time in the main file.
		target, declared, err := desired.FindDeclaration(main, dropins, d.name)
		if err != nil {
			return err
		}
		if !declared {
			target = file
		}
		changed, err := desired.AddPackage(target, d.name, d.c)
		if err != nil {
			return err
		}
		if changed {
			fmt.Fprintf(m.app.stdout, "%s: declared %s\n", target, describeDecl(d.name, d.c))
		}
	}
	return nil
}

func describeDecl(n packages.Name, c packages.Constraint) string {
	if c.IsZero() {
		return string(n)
	}
	return fmt.Sprintf("%s (%s)", n, c)
}

// undeclare deletes NAMEs' blocks from whichever state file declares them.
func (m *machine) undeclare(args []string) error {
	names, err := parseNames(args)
	if err != nil {
		return err
	}
	main, dropins := m.layout.Host(m.layout.StateFile), m.layout.Host(m.layout.StateDir)
	for _, name := range names {
		file, ok, err := desired.FindDeclaration(main, dropins, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not declared in %s or %s: nothing to remove (packets why %s tells why it is installed)", name, main, dropins, name)
		}
		if _, err := desired.RemovePackage(file, name); err != nil {
			return err
		}
		fmt.Fprintf(m.app.stdout, "%s: removed %s\n", file, name)
	}
	return nil
}

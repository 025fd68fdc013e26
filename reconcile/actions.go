package reconcile

import (
	"fmt"
	"maps"
	"slices"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// installActions turns the resolved families into install, upgrade,
// downgrade, reinstall and mark actions, ordered so that every package comes
// after the packages it depends on.
func (r *resolver) installActions() []Action {
	var acts []Action
	for _, n := range r.topoOrder() {
		if a, ok := r.actionFor(n); ok {
			acts = append(acts, a)
		}
	}
	return acts
}

func (r *resolver) actionFor(n *node) (Action, bool) {
	a := Action{Name: n.displayName(), Explicit: n.want != nil, Reason: r.reason(n)}
	if n.want != nil {
		a.Options = n.want.Options
	}
	if n.inst != nil {
		a.From = &n.inst.Build
	}
	switch {
	case n.inst == nil:
		a.Kind, a.To = Install, n.pick
	case n.pick != nil && n.pick.Serial > n.inst.Serial:
		a.Kind, a.To = Upgrade, n.pick
	case n.pick != nil && n.pick.Serial < n.inst.Serial:
		a.Kind, a.To = Downgrade, n.pick
	case slices.Contains(r.opts.Force, n.inst.Name):
		return r.reinstall(n, a, "reinstall requested")
	case a.Explicit && !maps.Equal(optionsOrNil(a.Options), optionsOrNil(n.inst.Options)):
		return r.reinstall(n, a, "options changed")
	case a.Explicit != n.inst.Explicit:
		a.Kind = Mark
		if a.Explicit {
			a.Reason += ", now explicit"
		} else {
			a.Reason = "now only a " + a.Reason
		}
	default:
		return a, false
	}
	return a, true
}

// reinstall makes a the reinstallation of the installed build, if the
// catalogue still has it.
func (r *resolver) reinstall(n *node, a Action, why string) (Action, bool) {
	b := r.installedBuild(n)
	if b == nil {
		r.warnings = append(r.warnings, fmt.Sprintf("%s: %s, but build %s (serial %d) is no longer in the catalogue to reinstall from", n.inst.Name, why, n.inst.Version, n.inst.Serial))
		return a, false
	}
	a.Kind, a.To, a.Reason = Reinstall, b, a.Reason+", "+why
	return a, true
}

// installedBuild finds the catalogue entry of exactly the installed build.
func (r *resolver) installedBuild(n *node) *packages.Available {
	for _, b := range r.cat.Family(n.family) {
		if b.Serial == n.inst.Serial && b.Digest == n.inst.Digest {
			return b
		}
	}
	return nil
}

func optionsOrNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func (r *resolver) reason(n *node) string {
	if n.want != nil {
		return n.want.Pos.FileLine()
	}
	return "dependency of " + string(n.parent.displayName())
}

// topoOrder lists the resolved families dependencies first. It is a
// depth-first post-order, visiting roots and dependencies by name, so it is
// deterministic; a dependency cycle is broken where the walk meets it.
func (r *resolver) topoOrder() []*node {
	var order []*node
	state := map[*node]uint8{} // 0 unvisited, 1 on the stack, 2 done
	var visit func(n *node)
	visit = func(n *node) {
		if state[n] != 0 {
			return
		}
		state[n] = 1
		deps := slices.Clone(n.depNodes)
		slices.SortFunc(deps, byName)
		for _, d := range deps {
			visit(d)
		}
		state[n] = 2
		order = append(order, n)
	}
	all := slices.Collect(maps.Values(r.nodes))
	slices.SortFunc(all, byName)
	for _, n := range all {
		visit(n)
	}
	return order
}

func byName(a, b *node) int {
	if c := compareNames(a.displayName(), b.displayName()); c != 0 {
		return c
	}
	return compareNames(packages.Name(a.family), packages.Name(b.family))
}

func compareNames(a, b packages.Name) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// removeActions removes every installed package whose family is neither
// wanted nor needed, dependents before their dependencies.
func (r *resolver) removeActions() []Action {
	gone := map[packages.Name]*Installed{}
	for fam, in := range r.byFamily {
		if _, kept := r.nodes[fam]; !kept {
			gone[in.Name] = in
		}
	}
	// Order by the installed dependency graph, reversed: a package is removed
	// before anything it depends on.
	var order []*Installed
	state := map[packages.Name]uint8{}
	var visit func(in *Installed)
	visit = func(in *Installed) {
		if state[in.Name] != 0 {
			return
		}
		state[in.Name] = 1
		for _, d := range in.Dependencies {
			if dep, ok := gone[d.Name]; ok {
				visit(dep)
			}
		}
		state[in.Name] = 2
		order = append(order, in)
	}
	for _, name := range slices.Sorted(maps.Keys(gone)) {
		visit(gone[name])
	}
	slices.Reverse(order)
	acts := make([]Action, 0, len(order))
	for _, in := range order {
		acts = append(acts, Action{Kind: Remove, Name: in.Name, From: &in.Build, Reason: r.removeReason(in)})
	}
	return acts
}

func (r *resolver) removeReason(in *Installed) string {
	if w, ok := r.absent[in.Family]; ok {
		return fmt.Sprintf("%s ensure = %q", w.Pos.FileLine(), desired.EnsureAbsent.String())
	}
	if in.Explicit {
		return "no longer in the state"
	}
	return "no longer needed"
}

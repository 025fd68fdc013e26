package reconcile

import (
	"fmt"
	"slices"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// Why explains why a package is, or would be, installed: the state line
// that declares it, or the chain of dependencies from a declared package,
// and every package that needs it. It resolves exactly as Compute does.
func Why(want desired.State, have Have, cat Catalog, name packages.Name) ([]string, error) {
	r := newResolver(want, have, cat)
	if err := r.resolve(); err != nil {
		return nil, err
	}
	if w, ok := want.Packages[name]; ok && w.Ensure == desired.EnsureAbsent {
		return []string{fmt.Sprintf("%s is declared absent at %s", name, w.Pos.FileLine())}, nil
	}
	var n *node
	for _, cand := range r.nodes {
		if cand.name == name || cand.displayName() == name {
			n = cand
			break
		}
	}
	if n == nil {
		if _, ok := have.Packages[name]; ok {
			return []string{fmt.Sprintf("%s is installed, but nothing declares or needs it: the next apply removes it", name)}, nil
		}
		return []string{fmt.Sprintf("%s is neither declared nor needed by anything declared", name)}, nil
	}
	var lines []string
	if n.want != nil {
		lines = append(lines, fmt.Sprintf("%s is declared at %s", n.displayName(), n.want.Pos.FileLine()))
	} else {
		lines = append(lines, fmt.Sprintf("%s is a dependency: %s", n.displayName(), chain(n.parent, n.displayName())))
	}
	var needers []string
	for _, other := range r.nodes {
		if slices.Contains(other.depNodes, n) {
			needers = append(needers, string(other.displayName()))
		}
	}
	slices.Sort(needers)
	for _, by := range needers {
		lines = append(lines, fmt.Sprintf("  needed by %s", by))
	}
	return lines, nil
}

package reconcile

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// maxRounds bounds the fixpoint of dependency resolution. Each round can
// only narrow constraints, so real catalogues settle in two or three.
const maxRounds = 32

// requirement is one constraint on a family and who imposes it.
type requirement struct {
	constraint packages.Constraint
	declared   *desired.Pos // where the state declares it, or nil: then by
	by         string       // the package whose dependency it is ("htop")
}

// source says where q comes from: "state.hcl:3" or "htop". A declaration's
// position is formatted only when a message needs it.
func (q requirement) source() string {
	if q.declared != nil {
		return q.declared.FileLine()
	}
	return q.by
}

// node is one family in the resolution: who wants it and what was chosen.
type node struct {
	family   packages.Family
	name     packages.Name // the name it was asked for by
	inst     *Installed    // the installed member of the family, if any
	want     *desired.Want // the declaration, when the state names it
	reqs     []requirement
	parent   *node               // first package that pulled it in; nil for declared roots
	pick     *packages.Available // the build to have; nil = keep inst as it is
	kept     bool                // inst stays as it is
	depNodes []*node
}

// Compute returns the plan that takes have to want, choosing builds from
// cat. It is pure: the same inputs always give the same plan, and it reads
// nothing else. Errors name the state file position or the dependency chain
// they come from; all resolution errors are returned together.
func Compute(want desired.State, have Have, cat Catalog) (*Plan, error) {
	return ComputeWith(want, have, cat, Options{})
}

// Options narrow what Compute may do, for packets upgrade.
type Options struct {
	// Upgrade, when not nil, lists the only installed packages that may move
	// to another build; every other installed package stays as it is (new
	// packages are still installed and orphans still removed).
	Upgrade []packages.Name
	// Force lists installed packages to reinstall even when their build does
	// not change (packets upgrade --force).
	Force []packages.Name
}

// ComputeWith is Compute narrowed by opts.
func ComputeWith(want desired.State, have Have, cat Catalog, opts Options) (*Plan, error) {
	r := newResolver(want, have, cat)
	r.opts = opts
	if err := r.resolve(); err != nil {
		return nil, err
	}
	p := &Plan{Generation: have.Generation, Managed: len(have.Packages), Warnings: r.warnings}
	for _, w := range want.Packages {
		if w.Ensure == desired.EnsurePresent {
			p.Declared++
		}
	}
	p.Actions = append(r.installActions(), r.removeActions()...)
	return p, nil
}

type resolver struct {
	want     desired.State
	have     Have
	cat      Catalog
	repos    []string
	byFamily map[packages.Family]*Installed
	absent   map[packages.Family]desired.Want
	nodes    map[packages.Family]*node
	reached  []*node // nodes' values in the order the walk reached them
	roots    []*node
	errs     []error
	warnings []string
	opts     Options
}

func newResolver(want desired.State, have Have, cat Catalog) *resolver {
	r := &resolver{want: want, have: have, cat: cat, repos: cat.Repos(),
		byFamily: make(map[packages.Family]*Installed), absent: make(map[packages.Family]desired.Want)}
	for _, name := range slices.Sorted(maps.Keys(have.Packages)) {
		in := have.Packages[name]
		if other, dup := r.byFamily[in.Family]; dup {
			r.warnings = append(r.warnings, fmt.Sprintf("%s and %s are installed from the same family; keeping %s", other.Name, name, other.Name))
			continue
		}
		r.byFamily[in.Family] = in
	}
	return r
}

func (r *resolver) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

// resolve runs rounds of dependency closure until the choice of every
// family stops changing: a constraint found late may move a family to
// another build, whose dependencies may differ.
func (r *resolver) resolve() error {
	r.declare()
	if len(r.errs) > 0 {
		return errors.Join(r.errs...)
	}
	for range maxRounds {
		stable := r.closure()
		if len(r.errs) > 0 {
			// Families are chosen in map order; report in a stable one.
			slices.SortFunc(r.errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
			return errors.Join(r.errs...)
		}
		if stable {
			return nil
		}
	}
	return fmt.Errorf("dependency resolution did not settle after %d rounds: constraints contradict each other", maxRounds)
}

// declare resolves every name the state declares to a family.
func (r *resolver) declare() {
	seen := map[packages.Family]packages.Name{}
	for _, name := range r.want.Names() {
		w := r.want.Packages[name]
		fam, ok := r.familyOf(name, w.Repo)
		if !ok {
			if w.Ensure == desired.EnsureAbsent {
				continue // absent and unknown: nothing to do
			}
			r.fail("%s: %s", w.Pos, r.notFound(name, w.Repo))
			continue
		}
		if other, dup := seen[fam]; dup {
			r.fail("%s: %s and %s are the same package family (%s): declare only one", w.Pos, other, name, fam)
			continue
		}
		seen[fam] = name
		if w.Ensure == desired.EnsureAbsent {
			r.absent[fam] = w
			continue
		}
		r.roots = append(r.roots, &node{family: fam, name: name, want: &w})
	}
}

// familyOf finds the family a name stands for: the family of the builds of
// that name in the highest-priority repository offering it (or in repo, when
// the state names one), else the family of the installed package of that name.
func (r *resolver) familyOf(name packages.Name, repo string) (packages.Family, bool) {
	var best *packages.Available
	for _, b := range r.cat.Named(name) {
		if repo != "" && b.Repo != repo {
			continue
		}
		if best == nil || repoRank(r.repos, b.Repo) < repoRank(r.repos, best.Repo) ||
			repoRank(r.repos, b.Repo) == repoRank(r.repos, best.Repo) && better(r.repos, b, best) {
			best = b
		}
	}
	if best != nil {
		return best.Family, true
	}
	if in, ok := r.have.Packages[name]; ok && repo == "" {
		return in.Family, true
	}
	return "", false
}

func (r *resolver) notFound(name packages.Name, repo string) string {
	if repo != "" {
		return fmt.Sprintf("package %s is not in repository %q", name, repo)
	}
	msg := fmt.Sprintf("package %s is not in the catalogue", name)
	if s := Suggest(string(name), r.cat.Names()); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return msg + "; run packets sync if it was added recently"
}

// closure walks from the declared roots through the chosen builds'
// dependencies, collecting every constraint, then chooses a build for every
// family reached. It reports whether every final choice is the build whose
// dependencies the walk followed: then the round was a fixpoint.
func (r *resolver) closure() (stable bool) {
	prevPick := r.nodes
	r.nodes = make(map[packages.Family]*node, len(prevPick))
	r.reached = r.reached[:0]
	queue := make([]*node, 0, len(r.roots))
	for _, root := range r.roots {
		n := &node{family: root.family, name: root.name, want: root.want, inst: r.byFamily[root.family]}
		n.reqs = []requirement{{constraint: root.want.Constraint, declared: &root.want.Pos}}
		r.nodes[n.family] = n
		r.reached = append(r.reached, n)
		queue = append(queue, n)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		// Traverse with last round's choice when there is one, so that a
		// constraint discovered later in this round can still move it.
		deps := r.depsOf(n, prevPick[n.family])
		for _, d := range deps {
			child, isNew := r.reach(n, d)
			if child == nil {
				continue
			}
			n.depNodes = append(n.depNodes, child)
			if isNew {
				queue = append(queue, child)
			}
		}
	}
	stable = true
	// In the order reached, not the map's: what an error names (a parent's
	// chosen build) must not change from run to run.
	for _, n := range r.reached {
		walked, walkedKept := n.pick, n.kept
		r.choose(n)
		if n.pick != walked || n.kept != walkedKept {
			stable = false
		}
	}
	return stable
}

// depsOf returns the dependencies of the build n stands for: last round's
// choice, else a provisional choice from what is known so far.
func (r *resolver) depsOf(n, prev *node) []packages.Dependency {
	if prev == nil {
		r.choose(n)
	} else {
		n.pick, n.kept = prev.pick, prev.kept
	}
	switch {
	case n.pick != nil:
		return n.pick.Dependencies
	case n.inst != nil:
		return n.inst.Dependencies
	}
	return nil
}

// reach records that parent needs d and returns d's node, creating it (and
// reporting it new) the first time the family is reached.
func (r *resolver) reach(parent *node, d packages.Dependency) (*node, bool) {
	fam, ok := r.familyOf(d.Name, "")
	if !ok {
		r.fail("%s: %s", chain(parent, d.Name), r.notFound(d.Name, ""))
		return nil, false
	}
	if w, isAbsent := r.absent[fam]; isAbsent {
		r.fail("%s: needs %s, but %s declares it ensure = \"absent\"", chain(parent, d.Name), d.Name, w.Pos)
		return nil, false
	}
	req := requirement{constraint: d.Constraint, by: string(parent.displayName())}
	if n, seen := r.nodes[fam]; seen {
		n.reqs = append(n.reqs, req)
		return n, false
	}
	n := &node{family: fam, name: d.Name, inst: r.byFamily[fam], parent: parent, reqs: []requirement{req}}
	r.nodes[fam] = n
	r.reached = append(r.reached, n)
	return n, true
}

// choose picks the build a family should have, given every constraint on
// it: the highest serial allowed, unless the installed build is allowed and
// at least as high (never a silent downgrade), or the package is held.
func (r *resolver) choose(n *node) {
	n.pick, n.kept = nil, false
	instOK := n.inst != nil && n.allows(n.inst.Version)
	if n.inst != nil && (n.want != nil && n.want.Hold || !r.mayUpgrade(n.inst.Name)) {
		n.kept = true
		return
	}
	var best *packages.Available
	for _, b := range r.candidates(n) {
		if n.allows(b.Version) && (best == nil || better(r.repos, b, best)) {
			best = b
		}
	}
	switch {
	case best == nil && instOK:
		n.kept = true
	case best == nil:
		r.fail("%s: no build of %s satisfies %s%s", n.where(), n.name, n.describeReqs(), r.availableVersions(n))
	case instOK && best.Serial <= n.inst.Serial:
		n.kept = true
	default:
		n.pick = best
	}
}

// mayUpgrade reports whether Options allow an installed package to move.
func (r *resolver) mayUpgrade(name packages.Name) bool {
	return r.opts.Upgrade == nil || slices.Contains(r.opts.Upgrade, name)
}

// candidates are the builds of n's family that n may take: only from the
// repository the state names, else from the highest-priority repository that
// offers the family (as pacman takes the first repository's package, whatever
// the others offer), else from any.
func (r *resolver) candidates(n *node) []*packages.Available {
	all := r.cat.Family(n.family)
	if n.want != nil && n.want.Repo != "" {
		return slices.DeleteFunc(slices.Clone(all), func(b *packages.Available) bool { return b.Repo != n.want.Repo })
	}
	var top []*packages.Available
	rank := -1
	for _, b := range all {
		switch br := repoRank(r.repos, b.Repo); {
		case rank < 0 || br < rank:
			top, rank = []*packages.Available{b}, br
		case br == rank:
			top = append(top, b)
		}
	}
	return top
}

func (n *node) allows(v packages.Version) bool {
	for _, q := range n.reqs {
		if !q.constraint.Allows(v) {
			return false
		}
	}
	return true
}

func (n *node) displayName() packages.Name {
	switch {
	case n.pick != nil:
		return n.pick.Name
	case n.inst != nil && n.kept:
		return n.inst.Name
	}
	return n.name
}

func (n *node) where() string {
	if n.want != nil {
		return n.want.Pos.String()
	}
	return chain(n.parent, n.name)
}

func (n *node) describeReqs() string {
	var parts []string
	for _, q := range n.reqs {
		if !q.constraint.IsZero() {
			parts = append(parts, fmt.Sprintf("%s (%s)", q.constraint, q.source()))
		}
	}
	if len(parts) == 0 {
		return "any version"
	}
	return strings.Join(parts, " and ")
}

func (r *resolver) availableVersions(n *node) string {
	var vs []string
	for _, b := range r.cat.Family(n.family) {
		vs = append(vs, string(b.Version))
	}
	if len(vs) == 0 {
		return " (the catalogue has no build of it)"
	}
	slices.SortFunc(vs, func(a, b string) int { return packages.CompareVersions(packages.Version(a), packages.Version(b)) })
	return " (available: " + strings.Join(slices.Compact(vs), ", ") + ")"
}

// chain renders how a dependency was reached: "htop -> ncurses -> libtinfo".
func chain(parent *node, name packages.Name) string {
	parts := []string{string(name)}
	for p := parent; p != nil; p = p.parent {
		parts = append(parts, string(p.displayName()))
	}
	slices.Reverse(parts)
	return strings.Join(parts, " -> ")
}

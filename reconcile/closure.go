package reconcile

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// A Reacher reads the synced indexes.
type Reacher interface {
	// Named returns every build named one of names, with its Repo set.
	Named(ctx context.Context, names []packages.Name) ([]packages.Available, error)
	// FamilyNames returns the names that builds of families have.
	FamilyNames(ctx context.Context, families []packages.Family) ([]packages.Name, error)
}

// LoadCatalog reads the part of the catalogue that Compute can look at for
// want and have, rather than every build of every index: from the names
// want declares and the names, families and dependencies of what have
// holds, it reads the builds of every name and family reached, then of
// their families and their dependencies' names, a step at a time, until a
// step reaches nothing new. Compute looks builds up only by a name declared
// or depended on and by the family of a build it found or of an installed
// package, so it plans over this catalogue exactly as over the whole one
// (TestLoadCatalogPlansAsTheWhole). names, when not nil, lists every name
// the indexes offer: Names calls it, for "did you mean" on an unknown name.
func LoadCatalog(ctx context.Context, repos []string, want desired.State, have Have, reach Reacher, names func() []packages.Name) (*MemCatalog, error) {
	l := NewCatalogLoader(repos, reach, names)
	if err := l.AddHave(ctx, have); err != nil {
		return nil, err
	}
	if err := l.AddState(ctx, want); err != nil {
		return nil, err
	}
	return l.Catalog(), nil
}

// CatalogLoader is LoadCatalog a part at a time, so that the catalogue can
// be read for the installed packages while the state file is still being
// parsed. Its methods must not be called concurrently.
type CatalogLoader struct {
	repos      []string
	reach      Reacher
	names      func() []packages.Name
	seenName   map[packages.Name]bool
	seenFamily map[packages.Family]bool
	nextNames  []packages.Name
	nextFams   []packages.Family
	builds     []packages.Available
}

// NewCatalogLoader starts an empty catalogue; see LoadCatalog.
func NewCatalogLoader(repos []string, reach Reacher, names func() []packages.Name) *CatalogLoader {
	return &CatalogLoader{repos: repos, reach: reach, names: names,
		seenName: map[packages.Name]bool{}, seenFamily: map[packages.Family]bool{}}
}

// AddHave reads what the installed packages reach.
func (l *CatalogLoader) AddHave(ctx context.Context, have Have) error {
	if len(l.seenName) == 0 { // sized once: a thousand names grew them a dozen times
		l.seenName = make(map[packages.Name]bool, 2*len(have.Packages))
		l.seenFamily = make(map[packages.Family]bool, 2*len(have.Packages))
	}
	for n, in := range have.Packages {
		l.addName(n)
		l.addFamily(in.Family)
		for _, d := range in.Dependencies {
			l.addName(d.Name)
		}
	}
	return l.load(ctx)
}

// AddState reads what the state's declarations reach.
func (l *CatalogLoader) AddState(ctx context.Context, want desired.State) error {
	for n := range want.Packages {
		l.addName(n)
	}
	return l.load(ctx)
}

func (l *CatalogLoader) addName(n packages.Name) {
	if !l.seenName[n] {
		l.seenName[n] = true
		l.nextNames = append(l.nextNames, n)
	}
}

func (l *CatalogLoader) addFamily(f packages.Family) {
	if !l.seenFamily[f] {
		l.seenFamily[f] = true
		l.nextFams = append(l.nextFams, f)
	}
}

// load reads the builds of the names and families not yet read, and of
// what they reach, until nothing new is reached. A family is read through
// its builds' names: reading a name reads all its builds, so a family's
// builds are all read once all its names are, and a build is never read
// twice.
//
// Names are read before families: a family's names are mostly names
// already reached, and an index that reads many names reads itself whole
// (index.Index.Named), after which its families are answered from memory.
func (l *CatalogLoader) load(ctx context.Context) error {
	for len(l.nextNames) > 0 || len(l.nextFams) > 0 {
		if ns := l.nextNames; len(ns) > 0 {
			l.nextNames = nil
			got, err := l.reach.Named(ctx, ns)
			if err != nil {
				return err
			}
			for _, b := range got {
				l.builds = append(l.builds, b)
				l.addFamily(b.Family)
				for _, d := range b.Dependencies {
					l.addName(d.Name)
				}
			}
		}
		if fs := l.nextFams; len(fs) > 0 {
			l.nextFams = nil
			names, err := l.reach.FamilyNames(ctx, fs)
			if err != nil {
				return err
			}
			for _, n := range names {
				l.addName(n)
			}
		}
	}
	return nil
}

// Catalog returns what was read, as a catalogue.
func (l *CatalogLoader) Catalog() *MemCatalog {
	// In the order a whole load gives: by repository, name and serial.
	slices.SortFunc(l.builds, func(a, b packages.Available) int {
		return cmp.Or(cmp.Compare(repoRank(l.repos, a.Repo), repoRank(l.repos, b.Repo)),
			strings.Compare(string(a.Name), string(b.Name)), cmp.Compare(a.Serial, b.Serial))
	})
	c := NewMemCatalog(l.repos, l.builds)
	c.allNames = l.names
	return c
}

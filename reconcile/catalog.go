package reconcile

import (
	"cmp"
	"slices"

	"github.com/packets-dev/packets/packages"
)

// Catalog is what Compute asks of the synced repositories. Builds are
// returned in no particular order; Repos gives the priority of repositories
// (config order), which decides where a name offered twice comes from.
type Catalog interface {
	Named(name packages.Name) []*packages.Available
	Family(f packages.Family) []*packages.Available
	Repos() []string
	Names() []packages.Name // every name offered, for "did you mean"
}

// MemCatalog is an in-memory Catalog: the whole synced catalogue in maps,
// which is what resolving tens of thousands of packages quickly needs.
type MemCatalog struct {
	repos    []string
	byName   map[packages.Name][]*packages.Available
	byFamily map[packages.Family][]*packages.Available
	allNames func() []packages.Name // when set (by LoadCatalog), what Names returns
}

// NewMemCatalog indexes builds. repos lists repository names in priority
// order; a build whose Repo is not listed sorts after all listed ones.
func NewMemCatalog(repos []string, builds []packages.Available) *MemCatalog {
	c := &MemCatalog{
		repos:    repos,
		byName:   make(map[packages.Name][]*packages.Available, len(builds)),
		byFamily: make(map[packages.Family][]*packages.Available, len(builds)),
	}
	for i := range builds {
		b := &builds[i]
		c.byName[b.Name] = append(c.byName[b.Name], b)
		c.byFamily[b.Family] = append(c.byFamily[b.Family], b)
	}
	return c
}

// Named implements Catalog.
func (c *MemCatalog) Named(n packages.Name) []*packages.Available { return c.byName[n] }

// Family implements Catalog.
func (c *MemCatalog) Family(f packages.Family) []*packages.Available { return c.byFamily[f] }

// Repos implements Catalog.
func (c *MemCatalog) Repos() []string { return c.repos }

// Names implements Catalog.
func (c *MemCatalog) Names() []packages.Name {
	if c.allNames != nil {
		return c.allNames()
	}
	names := make([]packages.Name, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// repoRank orders repositories by priority; unknown ones come last.
func repoRank(repos []string, repo string) int {
	if i := slices.Index(repos, repo); i >= 0 {
		return i
	}
	return len(repos)
}

// better reports whether a should be preferred over b among builds of one
// family: the higher serial, then the higher-priority repository, then the
// smaller digest (only so that the choice is deterministic).
func better(repos []string, a, b *packages.Available) bool {
	if a.Serial != b.Serial {
		return a.Serial > b.Serial
	}
	if ra, rb := repoRank(repos, a.Repo), repoRank(repos, b.Repo); ra != rb {
		return ra < rb
	}
	return cmp.Compare(a.Digest.String(), b.Digest.String()) < 0
}

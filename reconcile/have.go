package reconcile

import (
	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
)

// Installed is what Compute needs to know of one installed package.
type Installed struct {
	Build
	Family       packages.Family
	Dependencies []packages.Dependency
	Explicit     bool // declared by the state when installed; false for a dependency
	Options      map[string]string
	Repo         string
}

// Have is the installed side of a plan: a snapshot of installed.db.
type Have struct {
	Generation int64
	Packages   map[packages.Name]*Installed
}

// HaveFromSnapshot is the planner's view of an installed.db snapshot.
func HaveFromSnapshot(s *installed.Snapshot) Have {
	h := Have{Generation: int64(s.Generation), Packages: make(map[packages.Name]*Installed, len(s.Packages))}
	for name, p := range s.Packages {
		h.Packages[name] = &Installed{
			Build:        Build{Name: p.Name, Version: p.Version, Serial: p.Serial, Digest: p.Digest},
			Family:       p.Family,
			Dependencies: p.Dependencies,
			Explicit:     p.Reason == installed.ReasonExplicit,
			Options:      p.Options,
			Repo:         p.Repo,
		}
	}
	return h
}

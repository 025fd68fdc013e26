package reconcile

import (
	"fmt"
	"testing"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// fuzzWorld decodes bytes into a catalogue, a state and an installed set.
// Dependencies point only to lower-numbered packages, so the graph is acyclic
// and a strict dependency order must exist.
func fuzzWorld(data []byte) (desired.State, Have, *MemCatalog) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	n := int(next()%12) + 1
	var builds []packages.Available
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		for s := range int(next()%3) + 1 {
			var deps []string
			for j := range i {
				if next()%4 == 0 {
					dep := fmt.Sprintf("p%d", j)
					if next()%3 == 0 {
						dep += " >= 1"
					}
					deps = append(deps, dep)
				}
			}
			builds = append(builds, avail(name, fmt.Sprintf("%d", s+1), name, int64(s+1), deps...))
		}
	}
	var decls []string
	h := have()
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		switch next() % 5 {
		case 0:
			decls = append(decls, name)
		case 1:
			decls = append(decls, name+" absent")
		case 2:
			decls = append(decls, name+" < 2")
		}
		if b := next(); b%3 == 0 {
			for _, a := range builds {
				if string(a.Name) == name && a.Serial == int64(b%2)+1 {
					h.Packages[a.Name] = inst(a, b%2 == 0)
				}
			}
		}
	}
	return state(decls...), h, NewMemCatalog([]string{""}, builds)
}

func FuzzCompute(f *testing.F) {
	f.Add([]byte{5, 1, 0, 2, 1, 3, 0, 0, 1, 2, 3, 4, 0, 0, 0})
	f.Add([]byte{11, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		want, h, cat := fuzzWorld(data)
		p, err := Compute(want, h, cat)
		if err != nil {
			return // contradictions and absent-vs-dependency conflicts are fine
		}
		present := map[packages.Name]bool{}
		for name := range h.Packages {
			present[name] = true
		}
		removed := map[packages.Name]bool{}
		for _, a := range p.Actions {
			switch a.Kind {
			case Install, Upgrade, Downgrade, Reinstall:
				for _, d := range a.To.Dependencies {
					if !present[d.Name] {
						t.Fatalf("%s %s before its dependency %s:\n%s", a.Kind, a.Name, d.Name, p)
					}
				}
				present[a.Name] = true
			case Remove:
				// Nothing still present may depend on what is removed.
				for name, in := range h.Packages {
					if removed[name] || name == a.Name {
						continue
					}
					for _, d := range in.Dependencies {
						if d.Name == a.Name && isRemovedLater(p, name) {
							t.Fatalf("removed %s before its dependent %s:\n%s", a.Name, name, p)
						}
					}
				}
				removed[a.Name] = true
			}
		}
		for name, w := range want.Packages {
			if w.Ensure == desired.EnsureAbsent && present[name] && !removed[name] {
				t.Fatalf("%s is declared absent but stays:\n%s", name, p)
			}
		}
		again, _ := Compute(want, h, cat)
		if again.String() != p.String() {
			t.Fatalf("not deterministic:\n%s\nvs\n%s", p, again)
		}
	})
}

func isRemovedLater(p *Plan, name packages.Name) bool {
	for _, a := range p.Actions {
		if a.Kind == Remove && a.Name == name {
			return true
		}
	}
	return false
}

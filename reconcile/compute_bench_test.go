package reconcile

import (
	"fmt"
	"testing"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// benchWorld is a catalogue of n packages (each with two builds, depending
// on up to three lower-numbered packages), a state declaring `declared` of
// them, and `installed` of them installed at their older build (or, when
// current, at the newest: the no-op case).
func benchWorld(n, declared, installed int, current bool) (desired.State, Have, *MemCatalog) {
	builds := make([]packages.Available, 0, 2*n)
	for i := range n {
		name := fmt.Sprintf("pkg%05d", i)
		var deps []string
		for _, d := range []int{i / 2, i / 3, i / 7} {
			if d < i && d > 0 {
				deps = append(deps, fmt.Sprintf("pkg%05d", d))
			}
		}
		builds = append(builds, avail(name, "1.0", name, 1, deps...), avail(name, "1.1", name, 2, deps...))
	}
	var decls []string
	for i := range declared {
		decls = append(decls, fmt.Sprintf("pkg%05d", n-1-i*(n/declared)))
	}
	want := state(decls...)
	cat := NewMemCatalog([]string{""}, builds)
	h := have()
	if current {
		// Install exactly what the state needs, at the newest build: a no-op.
		p, err := Compute(want, h, cat)
		if err != nil {
			panic(err)
		}
		for _, a := range p.Actions {
			h.Packages[a.Name] = inst(*a.To, a.Explicit)
		}
		return want, h, cat
	}
	for i := range installed {
		b := builds[2*(i*(n/installed))]
		h.Packages[b.Name] = inst(b, false)
	}
	return want, h, cat
}

func BenchmarkCompute(b *testing.B) {
	for _, bc := range []struct {
		name    string
		current bool
	}{{"changes", false}, {"noop", true}} {
		want, h, cat := benchWorld(20000, 1000, 1000, bc.current)
		b.Run(fmt.Sprintf("%s/declared=1000/catalogue=20000/installed=%d", bc.name, len(h.Packages)), func(b *testing.B) {
			for b.Loop() {
				p, err := Compute(want, h, cat)
				if err != nil {
					b.Fatal(err)
				}
				if bc.current && p.Changes() {
					b.Fatalf("no-op world has changes:\n%s", p)
				}
			}
		})
	}
}

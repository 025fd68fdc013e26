package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

// closureWorld makes a catalogue that tempts a partial load to go wrong:
// two repositories, families whose builds change name (a rename), cycles,
// packages nobody reaches, installed builds the index no longer has, and state that pins, holds, names a repository or
// declares absent.
func closureWorld(r *rand.Rand) (desired.State, Have, []packages.Available) {
	n := 2 + r.IntN(14)
	repos := []string{"", "extra"}
	var builds []packages.Available
	for i := range n {
		for s := range 1 + r.IntN(3) {
			name := fmt.Sprintf("p%d", i)
			if r.IntN(4) == 0 {
				name = fmt.Sprintf("p%d-renamed%d", i, s) // the same family under another name
			}
			var deps []string
			for range r.IntN(3) {
				dep := fmt.Sprintf("p%d", r.IntN(n+2)) // cycles, and names no build has
				if r.IntN(3) == 0 {
					dep += " >= 2"
				}
				deps = append(deps, dep)
			}
			b := avail(name, fmt.Sprint(s+1), fmt.Sprintf("f%d", i), int64(s+1), deps...)
			b.Repo = repos[r.IntN(2)]
			if slices.ContainsFunc(builds, func(o packages.Available) bool {
				return o.Repo == b.Repo && o.Family == b.Family && o.Serial == b.Serial
			}) {
				continue
			}
			builds = append(builds, b)
		}
	}
	h := have()
	kept := builds[:0:0]
	for _, b := range builds {
		if _, dup := h.Packages[b.Name]; !dup && r.IntN(4) == 0 {
			h.Packages[b.Name] = inst(b, r.IntN(2) == 0)
			if r.IntN(3) == 0 {
				continue // installed, then dropped from the index
			}
		}
		kept = append(kept, b)
	}
	builds = kept
	var decls []string
	for i := range n + 1 {
		name := fmt.Sprintf("p%d", i)
		switch r.IntN(8) {
		case 0:
			decls = append(decls, name)
		case 1:
			decls = append(decls, name+" absent")
		case 2:
			decls = append(decls, name+" < 2")
		case 3:
			decls = append(decls, name+" hold")
		case 4:
			decls = append(decls, name+" repo=extra")
		}
	}
	return state(decls...), h, builds
}

// memReacher answers a Reacher's questions from builds, as an index
// would, counting the names and families asked for.
type memReacher struct {
	builds []packages.Available
	asked  int
	fail   error
}

func (m *memReacher) Named(_ context.Context, names []packages.Name) ([]packages.Available, error) {
	m.asked += len(names)
	var out []packages.Available
	for _, b := range m.builds {
		if slices.Contains(names, b.Name) {
			out = append(out, b)
		}
	}
	return out, m.fail
}

func (m *memReacher) FamilyNames(_ context.Context, families []packages.Family) ([]packages.Name, error) {
	m.asked += len(families)
	var out []packages.Name
	for _, b := range m.builds {
		if slices.Contains(families, b.Family) && !slices.Contains(out, b.Name) {
			out = append(out, b.Name)
		}
	}
	return out, m.fail
}

func TestLoadCatalogPlansAsTheWhole(t *testing.T) {
	repos := []string{"", "extra"}
	for seed := range uint64(3000) {
		want, h, builds := closureWorld(rand.New(rand.NewPCG(seed, 1)))
		whole := NewMemCatalog(repos, builds)
		part, err := LoadCatalog(t.Context(), repos, want, h, &memReacher{builds: builds}, whole.Names)
		if err != nil {
			t.Fatal(err)
		}
		p1, err1 := Compute(want, h, whole)
		p2, err2 := Compute(want, h, part)
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("seed %d: over the whole catalogue: %v\nover the loaded part: %v", seed, err1, err2)
		}
		if err1 == nil && p1.String() != p2.String() {
			t.Fatalf("seed %d: over the whole catalogue:\n%s\nover the loaded part:\n%s", seed, p1, p2)
		}
	}
}

func TestLoadCatalogReadsOnlyWhatIsReached(t *testing.T) {
	builds := []packages.Available{
		avail("app", "1", "app", 1, "lib"),
		avail("lib", "1", "lib", 1),
		avail("lib2", "2", "lib", 2, "base"), // lib renamed: its family is reached too
		avail("base", "1", "base", 1),
		avail("unrelated", "1", "unrelated", 1, "other"),
		avail("other", "1", "other", 1),
	}
	m := &memReacher{builds: builds}
	c, err := LoadCatalog(t.Context(), []string{""}, state("app"), have(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Names()
	if want := []packages.Name{"app", "base", "lib", "lib2"}; !slices.Equal(got, want) {
		t.Errorf("loaded %v, want %v", got, want)
	}
	// Names app; app's family, lib; lib's family (lib, lib2), lib2; base;
	// base's family.
	if want := 7; m.asked != want {
		t.Errorf("asked for %d names and families, want %d", m.asked, want)
	}
}

func TestLoadCatalogError(t *testing.T) {
	boom := errors.New("index unreadable")
	_, err := LoadCatalog(t.Context(), []string{""}, state("app"), have(), &memReacher{fail: boom}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("LoadCatalog: %v, want %v", err, boom)
	}
}

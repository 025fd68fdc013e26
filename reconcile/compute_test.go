package reconcile

import (
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/desired"
	"github.com/packets-dev/packets/packages"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// family makes a stable UUID for a family key, so tests can name families.
func family(key string) packages.Family {
	h := fnv.New64a()
	h.Write([]byte(key))
	return packages.Family(fmt.Sprintf("00000000-0000-4000-8000-%012x", h.Sum64()&0xffffffffffff))
}

// avail makes a catalogue build: avail("htop", "3.3.0", "htop", 4, "ncurses >= 6").
func avail(name, version, fam string, serial int64, deps ...string) packages.Available {
	m := packages.Manifest{Name: packages.Name(name), Version: packages.Version(version), Family: family(fam), Serial: serial}
	for _, d := range deps {
		dep, err := packages.ParseDependency(d)
		if err != nil {
			panic(err)
		}
		m.Dependencies = append(m.Dependencies, dep)
	}
	digest := packages.SumBytes([]byte(fmt.Sprintf("%s/%d/%s", fam, serial, name)))
	return packages.Available{Manifest: m, Digest: digest, Size: 1000 * serial, Filename: "packages/" + name + ".tar.zst"}
}

// inst makes an installed package from a catalogue build.
func inst(a packages.Available, explicit bool) *Installed {
	return &Installed{
		Build:  Build{Name: a.Name, Version: a.Version, Serial: a.Serial, Digest: a.Digest},
		Family: a.Family, Dependencies: a.Dependencies, Explicit: explicit, Repo: a.Repo,
	}
}

// state declares packages: "htop", "ripgrep >= 14", "nano absent", "rg hold".
func state(decls ...string) desired.State {
	s := desired.State{Packages: map[packages.Name]desired.Want{}}
	for i, d := range decls {
		fields := strings.Fields(d)
		w := desired.Want{Name: packages.Name(fields[0]), Pos: desired.Pos{File: "state.hcl", Line: 1 + 3*i, Col: 1}}
		rest := strings.Join(fields[1:], " ")
		switch {
		case rest == "absent":
			w.Ensure = desired.EnsureAbsent
		case rest == "hold":
			w.Hold = true
		case strings.HasPrefix(rest, "repo="):
			w.Repo = strings.TrimPrefix(rest, "repo=")
		case strings.HasPrefix(rest, "opt="):
			k, v, _ := strings.Cut(strings.TrimPrefix(rest, "opt="), ":")
			w.Options = map[string]string{k: v}
		case rest != "":
			c, err := packages.ParseConstraint(rest)
			if err != nil {
				panic(err)
			}
			w.Constraint = c
		}
		s.Packages[w.Name] = w
	}
	return s
}

func have(pkgs ...*Installed) Have {
	h := Have{Generation: 7, Packages: map[packages.Name]*Installed{}}
	for _, p := range pkgs {
		h.Packages[p.Name] = p
	}
	return h
}

// summary renders a plan's actions compactly: "+libc 1", "~htop 1->2", "-nano", "*b explicit".
func summary(p *Plan) []string {
	out := []string{}
	for _, a := range p.Actions {
		switch a.Kind {
		case Install:
			out = append(out, fmt.Sprintf("+%s %s", a.Name, a.To.Version))
		case Upgrade, Downgrade, Reinstall:
			out = append(out, fmt.Sprintf("%s %s %s->%s %s", a.Kind, a.From.Name, a.From.Version, a.To.Name, a.To.Version))
		case Remove:
			out = append(out, "-"+string(a.Name))
		case Mark:
			out = append(out, fmt.Sprintf("*%s explicit=%v", a.Name, a.Explicit))
		}
	}
	return out
}

var (
	libc1    = avail("libc", "1.0", "libc", 1)
	ncurses6 = avail("ncurses", "6.4", "ncurses", 3, "libc")
	htop33   = avail("htop", "3.3.0", "htop", 4, "ncurses >= 6")
	htop34   = avail("htop", "3.4.0", "htop", 5, "ncurses >= 6")
	rg13     = avail("ripgrep", "13.0.0", "rg", 6)
	rg14     = avail("ripgrep", "14.0.0", "rg", 7)
	rg141    = avail("ripgrep", "14.1.0", "rg", 9)
	nano     = avail("nano", "7.2", "nano", 1)
	aLib     = avail("a", "1", "a", 1, "b")
	bLib     = avail("b", "1", "b", 1)
)

func TestCompute(t *testing.T) {
	tests := []struct {
		name    string
		catalog []packages.Available
		want    desired.State
		have    Have
		plan    []string
		reasons []string // optional: each action's Reason
		err     string   // substring of the error, when one is expected
	}{
		{
			name:    "fresh install with deep dependencies",
			catalog: []packages.Available{libc1, ncurses6, htop33},
			want:    state("htop"),
			plan:    []string{"+libc 1.0", "+ncurses 6.4", "+htop 3.3.0"},
			reasons: []string{"dependency of ncurses", "dependency of htop", "state.hcl:1"},
		},
		{
			name:    "no-op",
			catalog: []packages.Available{libc1, ncurses6, htop33},
			want:    state("htop"),
			have:    have(inst(libc1, false), inst(ncurses6, false), inst(htop33, true)),
			plan:    []string{},
		},
		{
			name:    "upgrade by serial",
			catalog: []packages.Available{libc1, ncurses6, htop33, htop34},
			want:    state("htop"),
			have:    have(inst(libc1, false), inst(ncurses6, false), inst(htop33, true)),
			plan:    []string{"upgrade htop 3.3.0->htop 3.4.0"},
		},
		{
			name:    "newest serial wins over a lower one listed later",
			catalog: []packages.Available{rg141, rg13, rg14},
			want:    state("ripgrep"),
			plan:    []string{"+ripgrep 14.1.0"},
		},
		{
			name:    "pinned version installs the allowed build",
			catalog: []packages.Available{rg13, rg14, rg141},
			want:    state("ripgrep < 14.1"),
			plan:    []string{"+ripgrep 14.0.0"},
		},
		{
			name:    "constraint excluding the installed build downgrades",
			catalog: []packages.Available{rg13, rg14, rg141},
			want:    state("ripgrep = 13.0.0"),
			have:    have(inst(rg141, true)),
			plan:    []string{"downgrade ripgrep 14.1.0->ripgrep 13.0.0"},
		},
		{
			name:    "never a silent downgrade when the index lost the newer build",
			catalog: []packages.Available{rg13},
			want:    state("ripgrep"),
			have:    have(inst(rg141, true)),
			plan:    []string{},
		},
		{
			name:    "hold keeps the installed build",
			catalog: []packages.Available{rg13, rg141},
			want:    state("ripgrep hold"),
			have:    have(inst(rg13, true)),
			plan:    []string{},
		},
		{
			name:    "rename within a family is an upgrade",
			catalog: []packages.Available{avail("rg", "13.0.0", "rg", 6), avail("ripgrep", "14.0.0", "rg", 7)},
			want:    state("rg"),
			have:    have(inst(avail("rg", "13.0.0", "rg", 6), true)),
			plan:    []string{"upgrade rg 13.0.0->ripgrep 14.0.0"},
		},
		{
			name:    "orphans are removed after their dependent, dependents first",
			catalog: []packages.Available{libc1, ncurses6, htop33, nano},
			want:    state("nano"),
			have:    have(inst(libc1, false), inst(ncurses6, false), inst(htop33, true), inst(nano, true)),
			plan:    []string{"-htop", "-ncurses", "-libc"},
			reasons: []string{"no longer in the state", "no longer needed", "no longer needed"},
		},
		{
			name:    "a dependency declared becomes explicit",
			catalog: []packages.Available{aLib, bLib},
			want:    state("a", "b"),
			have:    have(inst(aLib, true), inst(bLib, false)),
			plan:    []string{"*b explicit=true"},
		},
		{
			name:    "an explicit package survives its former dependent's removal",
			catalog: []packages.Available{aLib, bLib},
			want:    state("b"),
			have:    have(inst(aLib, true), inst(bLib, true)),
			plan:    []string{"-a"},
		},
		{
			name:    "ensure absent removes",
			catalog: []packages.Available{nano, rg14},
			want:    state("ripgrep", "nano absent"),
			have:    have(inst(nano, true), inst(rg14, true)),
			plan:    []string{"-nano"},
			reasons: []string{`state.hcl:4 ensure = "absent"`},
		},
		{
			name:    "absent conflicts with a dependency",
			catalog: []packages.Available{aLib, bLib},
			want:    state("a", "b absent"),
			err:     `a -> b: needs b, but state.hcl:4:1 declares it ensure = "absent"`,
		},
		{
			name:    "dependency cycle",
			catalog: []packages.Available{avail("x", "1", "x", 1, "y"), avail("y", "1", "y", 1, "x")},
			want:    state("x"),
			plan:    []string{"+y 1", "+x 1"},
		},
		{
			name:    "missing dependency names the chain",
			catalog: []packages.Available{avail("x", "1", "x", 1, "y"), avail("y", "1", "y", 1, "zlib")},
			want:    state("x"),
			err:     "x -> y -> zlib: package zlib is not in the catalogue",
		},
		{
			name:    "unknown package suggests a name",
			catalog: []packages.Available{htop33, ncurses6, libc1},
			want:    state("htpo"),
			err:     "state.hcl:1:1: package htpo is not in the catalogue (did you mean htop?)",
		},
		{
			name:    "absent and unknown is fine",
			catalog: []packages.Available{rg14},
			want:    state("ripgrep", "nothere absent"),
			plan:    []string{"+ripgrep 14.0.0"},
		},
		{
			name:    "dependency constraint narrows the choice",
			catalog: []packages.Available{avail("app", "1", "app", 1, "lib < 2"), avail("lib", "1.5", "lib", 1), avail("lib", "2.0", "lib", 2)},
			want:    state("app"),
			plan:    []string{"+lib 1.5", "+app 1"},
		},
		{
			name: "a late constraint moves a family and drops its old dependencies",
			catalog: []packages.Available{
				avail("a", "1", "a", 1, "c"), avail("z", "1", "z", 1, "c < 2"),
				avail("c", "1", "c", 1), avail("c", "2", "c", 2, "d"), avail("d", "1", "d", 1),
			},
			want: state("a", "z"),
			plan: []string{"+c 1", "+a 1", "+z 1"},
		},
		{
			name:    "contradictory constraints",
			catalog: []packages.Available{avail("app", "1", "app", 1, "lib >= 2"), avail("lib", "1.5", "lib", 1)},
			want:    state("app"),
			err:     "app -> lib: no build of lib satisfies >= 2 (app) (available: 1.5)",
		},
		{
			name:    "one family declared twice",
			catalog: []packages.Available{avail("rg", "13", "rg", 6), avail("ripgrep", "14", "rg", 7)},
			want:    state("rg", "ripgrep"),
			err:     "rg and ripgrep are the same package family",
		},
		{
			name:    "options changed reinstalls",
			catalog: []packages.Available{nano},
			want:    state("nano opt=tabsize:4"),
			have:    have(inst(nano, true)),
			plan:    []string{"reinstall nano 7.2->nano 7.2"},
			reasons: []string{"state.hcl:1, options changed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.have
			if h.Packages == nil {
				h = have()
			}
			p, err := Compute(tt.want, h, NewMemCatalog([]string{""}, tt.catalog))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.plan, summary(p)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if tt.reasons != nil {
				var got []string
				for _, a := range p.Actions {
					got = append(got, a.Reason)
				}
				if diff := cmp.Diff(tt.reasons, got); diff != "" {
					t.Errorf("reasons (-want +got):\n%s", diff)
				}
			}
			if p.Generation != 7 {
				t.Errorf("Generation = %d, want the snapshot's 7", p.Generation)
			}
			again, _ := Compute(tt.want, h, NewMemCatalog([]string{""}, tt.catalog))
			if diff := cmp.Diff(p.String(), again.String()); diff != "" {
				t.Errorf("Compute is not deterministic (-first +second):\n%s", diff)
			}
		})
	}
}

func TestComputeRepoPriority(t *testing.T) {
	main := avail("tool", "1.0", "tool", 1)
	extra := avail("tool", "2.0", "tool", 2)
	extra.Repo = "extra"
	cat := NewMemCatalog([]string{"", "extra"}, []packages.Available{extra, main})
	for decl, wantVersion := range map[string]string{"tool": "1.0", "tool repo=extra": "2.0"} {
		p, err := Compute(state(decl), have(), cat)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(p); len(got) != 1 || got[0] != "+tool "+wantVersion {
			t.Errorf("%q: plan %q, want +tool %s (the first repository wins unless the state names one)", decl, got, wantVersion)
		}
	}
}

func TestCheckRemovals(t *testing.T) {
	var pkgs []*Installed
	var cat []packages.Available
	for i := range 30 {
		a := avail(fmt.Sprintf("p%02d", i), "1", fmt.Sprintf("p%02d", i), 1)
		cat = append(cat, a)
		pkgs = append(pkgs, inst(a, true))
	}
	h := have(pkgs...)
	c := NewMemCatalog([]string{""}, cat)
	keep := func(n int) desired.State {
		var decls []string
		for i := range n {
			decls = append(decls, fmt.Sprintf("p%02d", i))
		}
		return state(decls...)
	}
	tests := []struct {
		name  string
		want  desired.State
		opt   GuardOptions
		empty bool
		ok    bool
	}{
		{"empty state removes everything", state(), GuardOptions{}, true, false},
		{"empty state with --allow-removals", state(), GuardOptions{AllowRemovals: true}, false, true},
		{"16 of 30 is more than half", keep(14), GuardOptions{}, false, false},
		{"15 of 30 is allowed", keep(15), GuardOptions{}, false, true},
		{"configured limit", keep(25), GuardOptions{MaxRemovals: 4}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compute(tt.want, h, c)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckRemovals(p, tt.opt)
			var ge *RemovalGuardError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("guard refused: %v", err)
			case !tt.ok && !errors.As(err, &ge):
				t.Fatalf("guard let %d removals through", p.Count(Remove))
			case !tt.ok && ge.EmptyState != tt.empty:
				t.Errorf("EmptyState = %v, want %v (%v)", ge.EmptyState, tt.empty, err)
			}
		})
	}
}

func TestPlanGolden(t *testing.T) {
	cat := NewMemCatalog([]string{""}, []packages.Available{libc1, ncurses6, htop33, rg14, rg141, nano})
	p, err := Compute(state("htop", "ripgrep", "nano absent"), have(inst(rg14, true), inst(nano, true)), cat)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.golden", p.String())
	b, err := jsonIndent(p.JSON())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json.golden", string(b))
	empty, err := Compute(state("ripgrep"), have(inst(rg141, true)), cat)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "noop.golden", empty.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reconcile -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestRunsInstallHooks(t *testing.T) {
	plain, hooked := avail("htop", "3.3.0", "htop", 4), avail("nano", "8.0", "nano", 9)
	hooked.Hooks.Install = packages.InstallHook
	tests := []struct {
		name string
		p    Plan
		want bool
	}{
		{"no hooks", Plan{Actions: []Action{{Kind: Install, Name: "htop", To: &plain}}}, false},
		{"an install hook", Plan{Actions: []Action{{Kind: Install, Name: "htop", To: &plain}, {Kind: Upgrade, Name: "nano", To: &hooked}}}, true},
		{"a mark only", Plan{Actions: []Action{{Kind: Mark, Name: "nano", To: &hooked}}}, false},
		{"a removal", Plan{Actions: []Action{{Kind: Remove, Name: "nano", From: &Build{Name: "nano"}}}}, false},
	}
	for _, tt := range tests {
		if got := tt.p.RunsInstallHooks(); got != tt.want {
			t.Errorf("%s: RunsInstallHooks = %v, want %v", tt.name, got, tt.want)
		}
	}
}

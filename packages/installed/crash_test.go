package installed

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/packets-dev/packets/packages"
)

var errCrash = errors.New("simulated crash")

// crashFixture holds the archives of the crash tests, built once.
type crashFixture struct {
	cache                          map[packages.Digest]string
	htop1, htop2, tool, nano, less *Package
	procps, procpsNG               *Package
}

func newCrashFixture(m *machine) *crashFixture {
	fam := familyOf("procps")
	return &crashFixture{
		cache: m.cache, htop1: htopV1(m), htop2: htopV2(m), tool: m.build(toolSrc),
		nano: m.build(src{name: "nano", version: "8.0", serial: 9,
			files:   map[string]string{"bin/nano": "nano", "share/nano/a.nanorc": "a", "share/nano/b.nanorc": "b"},
			install: "copy bin/nano /usr/bin/nano\n"}),
		less: m.build(src{name: "less", version: "1", serial: 1, files: map[string]string{"bin/less": "less"}}),
		procps: m.build(src{name: "procps", version: "3", serial: 3, family: fam,
			files:   map[string]string{"bin/ps": "ps 3", "bin/top": "top 3", "etc/ps.conf": "x=1\n"},
			config:  []string{"etc/ps.conf"},
			install: "copy bin/ps /usr/bin/ps\ncopy bin/top /usr/bin/top\n", remove: "rm /usr/bin/ps\n"}),
		procpsNG: m.build(src{name: "procps-ng", version: "4", serial: 4, family: fam,
			files:   map[string]string{"bin/ps": "ps 4", "etc/ps.conf": "x=2\n"},
			config:  []string{"etc/ps.conf"},
			install: "copy bin/ps /usr/bin/ps\n"}),
	}
}

// crashScenario is a batch the crash tests interrupt.
type crashScenario struct {
	name string
	// setup installs the "before" state on m and returns the batch.
	setup         func(fx *crashFixture, m *machine) []Change
	before, after []packages.Name // installed before and after the batch
	// A config file the user modified, before and after the batch: its
	// content must survive whatever happens ("" when there is none).
	confBefore, confAfter, conf string
	noRemoveHook                bool // the batch runs no remove.lua: that step is never reached
}

var crashScenarios = []crashScenario{{
	// Upgrade htop (whose config the user modified), remove tool, install
	// nano and less. Three extractions on two workers make "stage-one" a
	// crash with an extraction never started.
	name: "batch",
	setup: func(fx *crashFixture, m *machine) []Change {
		m.mustApply(m.install(fx.htop1), m.install(fx.tool))
		must(m.t, m.root.WriteFile(rel(htopDir+"/data/etc/htoprc"), []byte("color=mine\n"), 0o644))
		return []Change{m.upgrade("htop", fx.htop2), m.remove("tool"), m.install(fx.nano), m.install(fx.less)}
	},
	before: []packages.Name{"htop", "tool"}, after: []packages.Name{"htop", "less", "nano"},
	confBefore: htopDir + "/data/etc/htoprc", confAfter: htopDir + "/data/etc/htoprc", conf: "color=mine\n",
}, {
	// Rename procps to procps-ng: the dir moves, the user's config moves
	// along, /usr/bin/top (made by the old hook) passes to the new name.
	name: "rename",
	setup: func(fx *crashFixture, m *machine) []Change {
		m.mustApply(m.install(fx.procps))
		must(m.t, m.root.WriteFile("opt/packets/procps/data/etc/ps.conf", []byte("x=mine\n"), 0o644))
		return []Change{m.upgrade("procps", fx.procpsNG)}
	},
	before: []packages.Name{"procps"}, after: []packages.Name{"procps-ng"},
	confBefore: "/opt/packets/procps/data/etc/ps.conf", confAfter: "/opt/packets/procps-ng/data/etc/ps.conf", conf: "x=mine\n",
}, {
	// Installs only, on a machine with tool installed: the receipts and
	// rows are written while the archives are extracted and committed as
	// the decision point; a roll forward writes them afresh.
	name: "installs",
	setup: func(fx *crashFixture, m *machine) []Change {
		m.mustApply(m.install(fx.tool))
		return []Change{m.install(fx.nano), m.install(fx.less)}
	},
	before: []packages.Name{"tool"}, after: []packages.Name{"less", "nano", "tool"},
	noRemoveHook: true,
}}

// reference returns the trees of the disk before and after an
// uninterrupted run of the scenario, on a machine of its own.
func (sc *crashScenario) reference(t *testing.T, fx *crashFixture) (oldTree, newTree map[string]string) {
	ref := newMachine(t)
	batch := sc.batch(fx, ref)
	oldTree = ref.tree()
	ref.mustApply(batch...)
	return oldTree, ref.tree()
}

// batch sets up m and returns the batch to interrupt.
func (sc *crashScenario) batch(fx *crashFixture, m *machine) []Change {
	m.t.Helper()
	m.cache = maps.Clone(fx.cache)
	return sc.setup(fx, m)
}

var toolSrc = src{name: "tool", version: "1", serial: 1,
	files:   map[string]string{"bin/tool": "tool", "etc/tool.conf": "t=1\n"},
	config:  []string{"etc/tool.conf"},
	install: "copy bin/tool /usr/bin/tool\n", remove: "rm /usr/bin/tool\n"}

// The steps the engine announces, in order; the decision point is
// "decided". "ran remove.lua" is inside PreHooks, "ran install.lua" inside
// PostHooks (between a hook and the recording of what it created).
var crashSteps = []struct {
	step    string
	forward bool
}{
	{"pending", false},
	{"stage-one", false}, // after the first of two extractions
	{"staged", false},
	{"ran remove.lua", false},
	{"prehooks", false},
	{"decided", true},
	{"renames-half", true},
	{"synced", true}, // before the SQL commit
	{"committed", true},
	{"ran install.lua", true},
	{"posthooks", true},
}

// TestCrashAtEveryStep stops the engine at each step, as a crash would,
// then does what the next command does (reopen, Recover) and checks the
// promise of DESIGN §8: every package wholly old or wholly new, the
// database matching the disk, no temps, the user's config kept.
func TestCrashAtEveryStep(t *testing.T) {
	fx := newCrashFixture(newMachine(t))
	for _, sc := range crashScenarios {
		oldTree, newTree := sc.reference(t, fx)
		for _, tt := range crashSteps {
			if sc.noRemoveHook && tt.step == "ran remove.lua" {
				continue
			}
			t.Run(sc.name+"/"+tt.step, func(t *testing.T) {
				t.Parallel()
				m := newMachine(t)
				batch := sc.batch(fx, m)
				m.db.crashAt = crashOnce(t, tt.step)
				if _, err := m.apply(batch...); !errors.Is(err, errCrash) {
					t.Fatalf("apply: %v, want the simulated crash at %q", err, tt.step)
				}
				m.reopen()
				rep, err := m.db.Recover(t.Context(), m.l, m.open, m.run)
				if err != nil {
					t.Fatal(err)
				}
				if rep.HookErrors != nil {
					t.Errorf("hook errors: %v", rep.HookErrors)
				}
				sc.check(t, m, tt.forward, oldTree, newTree)
				if done := rep.RolledBack; tt.forward {
					if done = rep.RolledForward; len(done) != len(batch) {
						t.Errorf("report %+v", rep)
					}
				} else if len(done) != len(batch) {
					t.Errorf("report %+v", rep)
				}
			})
		}
	}
}

// TestCrashDuringRecovery interrupts the roll forward itself.
func TestCrashDuringRecovery(t *testing.T) {
	fx := newCrashFixture(newMachine(t))
	for _, sc := range crashScenarios {
		oldTree, newTree := sc.reference(t, fx)
		for _, second := range []string{"staged", "renames-half", "synced", "ran install.lua"} {
			t.Run(sc.name+"/decided then "+second, func(t *testing.T) {
				t.Parallel()
				m := newMachine(t)
				batch := sc.batch(fx, m)
				m.db.crashAt = crashOnce(t, "decided")
				if _, err := m.apply(batch...); !errors.Is(err, errCrash) {
					t.Fatalf("apply: %v", err)
				}
				m.reopen()
				m.db.crashAt = crashOnce(t, second)
				if _, err := m.db.Recover(t.Context(), m.l, m.open, m.run); !errors.Is(err, errCrash) {
					t.Fatalf("first recovery: %v, want the simulated crash at %q", err, second)
				}
				m.reopen()
				if _, err := m.db.Recover(t.Context(), m.l, m.open, m.run); err != nil {
					t.Fatal(err)
				}
				sc.check(t, m, true, oldTree, newTree)
			})
		}
	}
}

// crashOnce returns a crash hook that fails the first time step is
// reached, and reports at cleanup if it never was.
func crashOnce(t *testing.T, step string) func(string) error {
	fired := false
	t.Cleanup(func() {
		if !fired {
			t.Errorf("the engine never reached step %q", step)
		}
	})
	return func(s string) error {
		if s == step && !fired {
			fired = true
			return fmt.Errorf("at %s: %w", s, errCrash)
		}
		return nil
	}
}

// check asserts that m is wholly in the old or the new state.
func (sc *crashScenario) check(t *testing.T, m *machine, forward bool, oldTree, newTree map[string]string) {
	t.Helper()
	wantNames, wantTree, conf := sc.before, oldTree, sc.confBefore
	if forward {
		wantNames, wantTree, conf = sc.after, newTree, sc.confAfter
	}
	if diff := cmp.Diff(wantNames, m.names()); diff != "" {
		t.Errorf("installed packages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantTree, m.tree()); diff != "" {
		t.Errorf("disk (-want +got):\n%s", diff)
	}
	if conf != "" {
		if got := m.read(conf); got != sc.conf {
			t.Errorf("the user's config %s is now %q", conf, got)
		}
	}
	m.verifyClean()
	m.noTemps()
	if rows, err := loadJournal(t.Context(), m.db.sql); err != nil || len(rows) != 0 {
		t.Errorf("journal after recovery: %d rows, %v", len(rows), err)
	}
}

// TestRecoverSweepsHookTemps: a crash killed the hook sandbox in the middle
// of os.copy, leaving its temporary in the bin dir (and one in the package
// dir). Recovery deletes them and nothing else.
func TestRecoverSweepsHookTemps(t *testing.T) {
	m := newMachine(t)
	p := m.build(src{name: "tool", version: "1", serial: 1, files: map[string]string{"x": "x"}, install: "copy x /usr/bin/tool\n"})
	m.db.crashAt = crashOnce(t, "ran install.lua")
	if _, err := m.apply(m.install(p)); !errors.Is(err, errCrash) {
		t.Fatalf("apply: %v, want the simulated crash", err)
	}
	left := []string{"usr/bin/" + packages.HookTempPrefix + "0123456789abcdef", "opt/packets/tool/data/" + packages.HookTempPrefix + "fedcba9876543210"}
	for _, f := range left {
		must(t, m.root.WriteFile(f, []byte("half a copy"), 0o600))
	}
	must(t, m.root.WriteFile("usr/bin/.keep", []byte("not ours"), 0o644))
	m.reopen()
	if _, err := m.db.Recover(t.Context(), m.l, m.open, m.run); err != nil {
		t.Fatal(err)
	}
	for _, f := range left {
		if _, err := m.root.Lstat(f); err == nil {
			t.Errorf("recovery left %s", f)
		}
	}
	if _, err := m.root.Lstat("usr/bin/.keep"); err != nil {
		t.Errorf("recovery removed a file that is not a hook's temporary: %v", err)
	}
	m.verifyClean()
}

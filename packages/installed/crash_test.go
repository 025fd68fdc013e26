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
}

func newCrashFixture(m *machine) *crashFixture {
	return &crashFixture{
		cache: m.cache, htop1: htopV1(m), htop2: htopV2(m), tool: m.build(toolSrc),
		nano: m.build(src{name: "nano", version: "8.0", serial: 9,
			files:   map[string]string{"bin/nano": "nano", "share/nano/a.nanorc": "a", "share/nano/b.nanorc": "b"},
			install: "copy bin/nano /usr/bin/nano\n"}),
		less: m.build(src{name: "less", version: "1", serial: 1, files: map[string]string{"bin/less": "less"}}),
	}
}

// batch installs the "before" state on m and returns the batch the crash
// tests interrupt: upgrade htop (whose config the user modified), remove
// tool, install nano and less. Three extractions on two workers make
// "stage-one" a crash with an extraction never started.
func (fx *crashFixture) batch(m *machine) []Change {
	m.t.Helper()
	m.cache = maps.Clone(fx.cache)
	m.mustApply(m.install(fx.htop1), m.install(fx.tool))
	must(m.t, m.root.WriteFile(rel(htopDir+"/data/etc/htoprc"), []byte("color=mine\n"), 0o644))
	return []Change{m.upgrade("htop", fx.htop2), m.remove("tool"), m.install(fx.nano), m.install(fx.less)}
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
	// What the disk looks like before and after an uninterrupted run.
	ref := newMachine(t)
	fx := newCrashFixture(ref)
	batch := fx.batch(ref)
	oldTree := ref.tree()
	ref.mustApply(batch...)
	newTree := ref.tree()

	for _, tt := range crashSteps {
		t.Run(tt.step, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t)
			batch := fx.batch(m)
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
			checkOutcome(t, m, tt.forward, oldTree, newTree)
			if tt.forward && len(rep.RolledForward) != 4 || !tt.forward && len(rep.RolledBack) != 4 {
				t.Errorf("report %+v", rep)
			}
		})
	}
}

// TestCrashDuringRecovery interrupts the roll forward itself.
func TestCrashDuringRecovery(t *testing.T) {
	ref := newMachine(t)
	fx := newCrashFixture(ref)
	batch := fx.batch(ref)
	oldTree := ref.tree()
	ref.mustApply(batch...)
	newTree := ref.tree()

	for _, second := range []string{"staged", "renames-half", "synced", "ran install.lua"} {
		t.Run("decided then "+second, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t)
			batch := fx.batch(m)
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
			checkOutcome(t, m, true, oldTree, newTree)
		})
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

func checkOutcome(t *testing.T, m *machine, forward bool, oldTree, newTree map[string]string) {
	t.Helper()
	wantNames, wantTree, htopVersion := []packages.Name{"htop", "tool"}, oldTree, packages.Version("3.2.0")
	if forward {
		wantNames, wantTree, htopVersion = []packages.Name{"htop", "less", "nano"}, newTree, "3.3.0"
	}
	if diff := cmp.Diff(wantNames, m.names()); diff != "" {
		t.Errorf("installed packages (-want +got):\n%s", diff)
	}
	if v := m.installed("htop").Version; v != htopVersion {
		t.Errorf("htop %s, want %s", v, htopVersion)
	}
	if diff := cmp.Diff(wantTree, m.tree()); diff != "" {
		t.Errorf("disk (-want +got):\n%s", diff)
	}
	if got := m.read(htopDir + "/data/etc/htoprc"); got != "color=mine\n" {
		t.Errorf("the user's config is now %q", got)
	}
	m.verifyClean()
	m.noTemps()
	if rows, err := loadJournal(t.Context(), m.db.sql); err != nil || len(rows) != 0 {
		t.Errorf("journal after recovery: %d rows, %v", len(rows), err)
	}
}

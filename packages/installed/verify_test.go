package installed

import (
	"errors"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/packets-dev/packets/packages"
)

func TestVerify(t *testing.T) {
	const bin, readme = htopDir + "/data/bin/htop", htopDir + "/data/share/doc/README"
	tests := []struct {
		name   string
		tamper func(r *os.Root) error
		fast   []Drift // with fast = true
		full   []Drift // with fast = false
	}{
		{"clean", func(*os.Root) error { return nil }, nil, nil},
		{"missing", func(r *os.Root) error { return r.Remove(rel(bin)) },
			[]Drift{{"htop", bin, "missing"}}, []Drift{{"htop", bin, "missing"}}},
		{"mode", func(r *os.Root) error { return r.Chmod(rel(bin), 0o700) },
			[]Drift{{"htop", bin, "mode 0700, want 0755"}}, []Drift{{"htop", bin, "mode 0700, want 0755"}}},
		{"size", func(r *os.Root) error { return r.WriteFile(rel(readme), []byte("longer readme"), 0o644) },
			[]Drift{{"htop", readme, "size 13, want 6"}}, []Drift{{"htop", readme, "size 13, want 6"}}},
		{"same size, new content", func(r *os.Root) error {
			fi, err := r.Lstat(rel(readme))
			if err != nil {
				return err
			}
			if err := r.WriteFile(rel(readme), []byte("README"), 0o644); err != nil {
				return err
			}
			return r.Chtimes(rel(readme), fi.ModTime(), fi.ModTime()) // hides it from --fast
		}, nil, []Drift{{"htop", readme, "sha256 differs"}}},
		{"touched", func(r *os.Root) error {
			return r.Chtimes(rel(readme), time.Unix(1, 0), time.Unix(1, 0))
		}, []Drift{{"htop", readme, "mtime differs"}}, nil},
		{"symlink retargeted", func(r *os.Root) error {
			if err := r.Remove(rel(htopDir + "/data/bin/top")); err != nil {
				return err
			}
			return r.Symlink("/usr/bin/top", rel(htopDir+"/data/bin/top"))
		}, []Drift{{"htop", htopDir + "/data/bin/top", `links to "/usr/bin/top", want "htop"`}},
			[]Drift{{"htop", htopDir + "/data/bin/top", `links to "/usr/bin/top", want "htop"`}}},
		{"type", func(r *os.Root) error {
			if err := r.RemoveAll(rel(htopDir + "/data/empty")); err != nil {
				return err
			}
			return r.WriteFile(rel(htopDir+"/data/empty"), nil, 0o644)
		}, []Drift{{"htop", htopDir + "/data/empty", "is a file, want a dir"}},
			[]Drift{{"htop", htopDir + "/data/empty", "is a file, want a dir"}}},
		{"hook-made file", func(r *os.Root) error { return r.WriteFile("usr/bin/htop", []byte("trojan!!"), 0o755) },
			[]Drift{{"htop", "/usr/bin/htop", "mtime differs"}}, []Drift{{"htop", "/usr/bin/htop", "sha256 differs"}}},
		{"config edited", func(r *os.Root) error {
			return r.WriteFile(rel(htopDir+"/data/etc/htoprc"), []byte("edited by the admin"), 0o600)
		}, nil, nil},
	}
	fx := newCrashFixture(newMachine(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t)
			m.cache = maps.Clone(fx.cache)
			m.mustApply(m.install(fx.htop1))
			must(t, tt.tamper(m.root))
			for _, fast := range []bool{true, false} {
				got, err := m.db.Verify(t.Context(), m.root, nil, fast)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.full
				if fast {
					want = tt.fast
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Verify(fast=%v) (-want +got):\n%s", fast, diff)
				}
			}
		})
	}
}

func TestVerifyNames(t *testing.T) {
	m := newMachine(t)
	m.mustApply(m.install(htopV1(m)), m.install(m.build(toolSrc)))
	must(t, m.root.Remove("usr/bin/tool"))
	must(t, m.root.Remove("usr/bin/htop"))
	got, err := m.db.Verify(t.Context(), m.root, []packages.Name{"tool"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Drift{{"tool", "/usr/bin/tool", "missing"}}, got); diff != "" {
		t.Errorf("Verify(tool) (-want +got):\n%s", diff)
	}
	if _, err := m.db.Verify(t.Context(), m.root, []packages.Name{"vim"}, true); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Verify(vim): %v, want ErrNotInstalled", err)
	}
}

func TestHookFailures(t *testing.T) {
	t.Run("install.lua fails", func(t *testing.T) {
		m := newMachine(t)
		_, err := m.apply(m.install(m.build(src{name: "half", version: "1", serial: 1,
			files: map[string]string{"a": "a"}, install: "copy a /usr/bin/half\nfail\n"})))
		var he *HookError
		if !errors.As(err, &he) || he.Ref.Name != "half" || he.Script != "install.lua" {
			t.Fatalf("a failing install.lua: %v, want a *HookError", err)
		}
		// The package is installed and owns what the hook made before failing.
		if n, _, _ := m.db.Owner(t.Context(), "/usr/bin/half"); n != "half" {
			t.Errorf("/usr/bin/half owned by %q", n)
		}
		m.reopen()
		rep, err := m.db.Recover(t.Context(), m.l, m.open, m.run)
		if err != nil || rep.HookErrors == nil {
			t.Errorf("Recover re-running the failing hook: %+v, %v", rep, err)
		}
		if rows, _ := loadJournal(t.Context(), m.db.sql); len(rows) != 0 {
			t.Error("a failing hook keeps the journal busy")
		}
		m.verifyClean()
	})
	t.Run("remove.lua fails", func(t *testing.T) {
		m := newMachine(t)
		m.mustApply(m.install(m.build(src{name: "stuck", version: "1", serial: 1,
			files: map[string]string{"a": "a"}, install: "copy a /usr/bin/stuck\n", remove: "rm /usr/bin/stuck\nfail\n"})))
		before := m.tree()
		tx, err := m.db.Begin(t.Context(), m.l, []Change{m.remove("stuck")})
		must(t, err)
		must(t, tx.Stage(t.Context()))
		if err := tx.PreHooks(t.Context(), m.run); err == nil {
			t.Fatal("a failing remove.lua went unreported")
		}
		must(t, tx.Abort(t.Context()))
		if diff := cmp.Diff(before, m.tree()); diff != "" {
			t.Errorf("abort (-before +after):\n%s", diff)
		}
		m.verifyClean()
	})
}

func TestRecoverNothing(t *testing.T) {
	m := newMachine(t)
	rep, err := m.db.Recover(t.Context(), m.l, m.open, nil)
	if err != nil || rep.RolledBack != nil || rep.RolledForward != nil {
		t.Errorf("Recover of a clean database: %+v, %v", rep, err)
	}
}

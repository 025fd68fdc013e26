package installed

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

func htopV1(m *machine) *Package {
	return m.build(src{
		name: "htop", version: "3.2.0", serial: 3,
		files: map[string]string{
			"bin/htop": "htop 3.2", "share/doc/README": "readme", "share/old/gone": "old only",
			"etc/htoprc": "color=1\n", "empty/": "",
		},
		modes:   map[string]fs.FileMode{"bin/htop": 0o755},
		links:   map[string]string{"bin/top": "htop"},
		config:  []string{"etc/htoprc"},
		install: "copy bin/htop /usr/bin/htop\n",
		remove:  "rm /usr/bin/htop\n",
	})
}

func htopV2(m *machine) *Package {
	return m.build(src{
		name: "htop", version: "3.3.0", serial: 4,
		files: map[string]string{
			"bin/htop": "htop 3.3", "share/doc/README": "readme", "share/doc/NEWS": "news",
			"etc/htoprc": "color=2\n",
		},
		modes:   map[string]fs.FileMode{"bin/htop": 0o755},
		links:   map[string]string{"bin/top": "htop"},
		config:  []string{"etc/htoprc"},
		install: "copy bin/htop /usr/bin/htop\n",
		remove:  "rm /usr/bin/htop\n",
	})
}

const htopDir = "/opt/packets/htop"

func TestInstall(t *testing.T) {
	m := newMachine(t)
	ctx := t.Context()
	g0, _ := m.db.Generation(ctx)
	v1 := htopV1(m)
	m.mustApply(m.install(v1))

	p := m.installed("htop")
	want := *v1
	want.Reason, want.DataDir, want.InstalledAt = ReasonExplicit, htopDir, p.InstalledAt
	want.InstallHook, want.RemoveHook = "copy bin/htop /usr/bin/htop\n", "rm /usr/bin/htop\n"
	want.InstalledSize = int64(len("htop 3.2") + len("readme") + len("old only") + len("color=1\n"))
	if diff := cmp.Diff(&want, p); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	if p.InstalledAt.IsZero() {
		t.Error("InstalledAt not set")
	}
	for path, content := range map[string]string{
		htopDir + "/data/bin/htop": "htop 3.2", htopDir + "/data/etc/htoprc": "color=1\n", "/usr/bin/htop": "htop 3.2",
	} {
		if got := m.read(path); got != content {
			t.Errorf("%s = %q, want %q", path, got, content)
		}
	}
	if l, err := m.root.Readlink(rel(htopDir + "/data/bin/top")); err != nil || l != "htop" {
		t.Errorf("symlink bin/top = %q, %v", l, err)
	}
	for path, want := range map[string]packages.Name{
		"/usr/bin/htop": "htop", htopDir: "htop", htopDir + "/data": "htop", htopDir + "/data/empty": "htop",
		htopDir + "/data/bin/top": "htop", "/usr/bin": "",
	} {
		if got, _, _ := m.db.Owner(ctx, path); got != want {
			t.Errorf("Owner(%s) = %q, want %q", path, got, want)
		}
	}
	files, _ := m.db.Files(ctx, "htop")
	for _, f := range files {
		if f.Path == "/usr/bin/htop" && (!f.FromHook || f.Digest != packages.SumBytes([]byte("htop 3.2"))) {
			t.Errorf("hook-made file row: %+v", f)
		}
		if f.Path == htopDir+"/data/etc/htoprc" && !f.Config {
			t.Errorf("config file not marked: %+v", f)
		}
	}
	if g, _ := m.db.Generation(ctx); g <= g0 {
		t.Errorf("generation %d did not move from %d", g, g0)
	}
	if v, _, _ := m.db.Meta(ctx, MetaDataDir); v != "/opt/packets" {
		t.Errorf("meta data_dir = %q", v)
	}
	if diff := cmp.Diff([]string{"htop install.lua"}, m.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	m.verifyClean()
	m.noTemps()
}

func TestUpgrade(t *testing.T) {
	m := newMachine(t)
	m.mustApply(m.install(htopV1(m)))
	readme, err := m.root.Lstat(rel(htopDir + "/data/share/doc/README"))
	must(t, err)
	m.calls = nil

	m.mustApply(m.upgrade("htop", htopV2(m)))

	if p := m.installed("htop"); p.Version != "3.3.0" || p.Serial != 4 {
		t.Errorf("installed %s serial %d, want 3.3.0 serial 4", p.Version, p.Serial)
	}
	for path, want := range map[string]string{
		htopDir + "/data/bin/htop":         "htop 3.3",
		htopDir + "/data/share/doc/README": "readme",
		htopDir + "/data/share/doc/NEWS":   "news",
		htopDir + "/data/etc/htoprc":       "color=2\n", // unmodified config: replaced
		htopDir + "/data/share/old/gone":   "<missing>",
		"/usr/bin/htop":                    "htop 3.3",
	} {
		if got := m.read(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for _, gone := range []string{htopDir + "/data/share/old", htopDir + "/data/empty", htopDir + "/data/etc/htoprc.packets-new"} {
		if m.exists(gone) {
			t.Errorf("%s survived the upgrade", gone)
		}
	}
	if now, err := m.root.Lstat(rel(htopDir + "/data/share/doc/README")); err != nil || !now.Mode().IsRegular() || now.Size() != readme.Size() {
		t.Errorf("unchanged file after upgrade: %v, %v", now, err)
	}
	if diff := cmp.Diff([]string{"htop remove.lua", "htop install.lua"}, m.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	m.verifyClean()
	m.noTemps()
}

func TestReinstallRepairs(t *testing.T) {
	m := newMachine(t)
	v1 := htopV1(m)
	m.mustApply(m.install(v1))
	must(t, m.root.Remove(rel(htopDir+"/data/bin/htop")))
	must(t, m.root.WriteFile(rel(htopDir+"/data/share/doc/README"), []byte("scribbled"), 0o644))
	m.calls = nil

	m.mustApply(Change{Kind: Reinstall, Old: m.installed("htop"), New: v1, Open: m.opener(v1)})

	if got := m.read(htopDir + "/data/bin/htop"); got != "htop 3.2" {
		t.Errorf("bin/htop after reinstall = %q", got)
	}
	if got := m.read(htopDir + "/data/share/doc/README"); got != "readme" {
		t.Errorf("README after reinstall = %q", got)
	}
	if diff := cmp.Diff([]string{"htop install.lua"}, m.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	m.verifyClean()
}

func TestRemove(t *testing.T) {
	for _, withHook := range []bool{true, false} {
		t.Run(map[bool]string{true: "remove.lua", false: "no remove.lua"}[withHook], func(t *testing.T) {
			m := newMachine(t)
			s := src{name: "tool", version: "1", serial: 1,
				files:   map[string]string{"bin/tool": "tool", "lib/a/b/c": "deep"},
				install: "copy bin/tool /usr/bin/tool\n"}
			if withHook {
				s.remove = "rm /usr/bin/tool\n"
			}
			m.mustApply(m.install(m.build(s)))
			// A file nobody owns, next to the package's: kept, with its dir.
			must(t, m.root.WriteFile("opt/packets/tool/data/lib/a/mine", []byte("mine"), 0o644))
			must(t, m.root.WriteFile("usr/bin/other", []byte("other"), 0o755))

			m.mustApply(m.remove("tool"))

			if _, err := m.db.Package(t.Context(), "tool"); !errors.Is(err, ErrNotInstalled) {
				t.Errorf("Package after remove: %v", err)
			}
			for path, want := range map[string]bool{
				"/usr/bin/tool": false, "/opt/packets/tool/data/bin": false, "/opt/packets/tool/data/lib/a/b": false,
				"/opt/packets/tool/data/lib/a/mine": true, "/usr/bin/other": true, "/usr/bin": true,
			} {
				if got := m.exists(path); got != want {
					t.Errorf("%s exists = %v, want %v", path, got, want)
				}
			}
			if n, ok, _ := m.db.Owner(t.Context(), "/usr/bin/tool"); ok {
				t.Errorf("/usr/bin/tool still owned by %s", n)
			}
			must(t, m.root.Remove("opt/packets/tool/data/lib/a/mine"))
			m.mustApply(m.install(m.build(s)))
			m.mustApply(m.remove("tool"))
			if m.exists("/opt/packets/tool") {
				t.Error("/opt/packets/tool survived the removal of its package")
			}
			m.verifyClean()
			m.noTemps()
		})
	}
}

func TestRenameWithinFamily(t *testing.T) {
	m := newMachine(t)
	fam := familyOf("procps")
	old := m.build(src{name: "procps", version: "3", serial: 3, family: fam,
		files:   map[string]string{"bin/ps": "ps 3", "etc/ps.conf": "x=1\n"},
		config:  []string{"etc/ps.conf"},
		install: "copy bin/ps /usr/bin/ps\n"})
	m.mustApply(m.install(old))
	must(t, m.root.WriteFile("opt/packets/procps/data/etc/ps.conf", []byte("x=mine\n"), 0o644))
	renamed := m.build(src{name: "procps-ng", version: "4", serial: 4, family: fam,
		files:  map[string]string{"bin/ps": "ps 4", "etc/ps.conf": "x=2\n"},
		config: []string{"etc/ps.conf"}})

	tx := m.mustApply(m.upgrade("procps", renamed))

	if diff := cmp.Diff([]packages.Name{"procps-ng"}, m.names()); diff != "" {
		t.Errorf("installed (-want +got):\n%s", diff)
	}
	if m.exists("/opt/packets/procps") {
		t.Error("the old package dir survived the rename")
	}
	for path, want := range map[string]string{
		"/opt/packets/procps-ng/data/bin/ps":                  "ps 4",
		"/opt/packets/procps-ng/data/etc/ps.conf":             "x=mine\n", // the user's, moved along
		"/opt/packets/procps-ng/data/etc/ps.conf.packets-new": "x=2\n",
		"/usr/bin/ps": "ps 3", // made by the old hook, passed to the new name
	} {
		if got := m.read(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if n, _, _ := m.db.Owner(t.Context(), "/usr/bin/ps"); n != "procps-ng" {
		t.Errorf("/usr/bin/ps owned by %q, want procps-ng", n)
	}
	want := []KeptConfig{{Package: "procps-ng", Path: "/opt/packets/procps-ng/data/etc/ps.conf",
		NewPath: "/opt/packets/procps-ng/data/etc/ps.conf.packets-new"}}
	if diff := cmp.Diff(want, tx.Kept()); diff != "" {
		t.Errorf("Kept (-want +got):\n%s", diff)
	}
	m.verifyClean()
	m.noTemps()
}

func TestConfigFiles(t *testing.T) {
	const conf = htopDir + "/data/etc/htoprc"
	tests := []struct {
		name     string
		user     string // written over the config before the change; "" leaves it
		change   func(m *machine, fx *crashFixture) Change
		wantConf string
		wantNew  string // content of conf.packets-new, "<missing>" for none
		wantKept []KeptConfig
	}{
		{"upgrade unmodified", "", func(m *machine, fx *crashFixture) Change { return m.upgrade("htop", fx.htop2) },
			"color=2\n", "<missing>", nil},
		{"upgrade modified", "color=mine\n", func(m *machine, fx *crashFixture) Change { return m.upgrade("htop", fx.htop2) },
			"color=mine\n", "color=2\n", []KeptConfig{{Package: "htop", Path: conf, NewPath: conf + ".packets-new"}}},
		{"reinstall modified", "color=mine\n", func(m *machine, fx *crashFixture) Change {
			return Change{Kind: Reinstall, Old: m.installed("htop"), New: fx.htop1, Open: m.opener(fx.htop1)}
		}, "color=mine\n", "color=1\n", []KeptConfig{{Package: "htop", Path: conf, NewPath: conf + ".packets-new"}}},
		{"upgrade drops it, modified", "color=mine\n", func(m *machine, _ *crashFixture) Change {
			return m.upgrade("htop", m.build(src{name: "htop", version: "4", serial: 5, files: map[string]string{"bin/htop": "4"}}))
		}, "color=mine\n", "<missing>", []KeptConfig{{Package: "htop", Path: conf}}},
		{"upgrade drops it, unmodified", "", func(m *machine, _ *crashFixture) Change {
			return m.upgrade("htop", m.build(src{name: "htop", version: "4", serial: 5, files: map[string]string{"bin/htop": "4"}}))
		}, "<missing>", "<missing>", nil},
		{"remove unmodified", "", func(m *machine, _ *crashFixture) Change { return m.remove("htop") }, "<missing>", "<missing>", nil},
		{"remove modified", "color=mine\n", func(m *machine, _ *crashFixture) Change { return m.remove("htop") },
			"color=mine\n", "<missing>", []KeptConfig{{Package: "htop", Path: conf}}},
	}
	fx := newCrashFixture(newMachine(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t)
			m.cache = maps.Clone(fx.cache)
			m.mustApply(m.install(fx.htop1))
			if tt.user != "" {
				must(t, m.root.WriteFile(rel(conf), []byte(tt.user), 0o644))
			}
			tx := m.mustApply(tt.change(m, fx))
			if got := m.read(conf); got != tt.wantConf {
				t.Errorf("config = %q, want %q", got, tt.wantConf)
			}
			if got := m.read(conf + ".packets-new"); got != tt.wantNew {
				t.Errorf("config.packets-new = %q, want %q", got, tt.wantNew)
			}
			if diff := cmp.Diff(tt.wantKept, tx.Kept()); diff != "" {
				t.Errorf("Kept (-want +got):\n%s", diff)
			}
			m.verifyClean()
		})
	}
}

func TestConflicts(t *testing.T) {
	t.Run("unowned file", func(t *testing.T) {
		m := newMachine(t)
		must(t, m.root.MkdirAll("opt/packets/htop/data/bin", 0o755))
		must(t, m.root.WriteFile("opt/packets/htop/data/bin/htop", []byte("by hand"), 0o755))
		before := m.tree()
		_, err := m.apply(m.install(htopV1(m)))
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Path != htopDir+"/data/bin/htop" || ce.Owner != "" {
			t.Fatalf("install over a file made by hand: %v, want *ConflictError", err)
		}
		m.reopen() // the next command recovers
		if _, err := m.db.Recover(t.Context(), m.l, m.open, m.run); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, m.tree()); diff != "" {
			t.Errorf("the refused install changed the disk (-before +after):\n%s", diff)
		}
	})
	t.Run("owned by another package", func(t *testing.T) {
		m := newMachine(t)
		m.mustApply(m.install(m.build(src{name: "squatter", version: "1", serial: 1, files: map[string]string{"x": "x"}})))
		// As a hook of an older packets could have left it.
		must(t, m.root.MkdirAll(rel(htopDir+"/data/bin"), 0o755))
		must(t, m.root.WriteFile(rel(htopDir+"/data/bin/htop"), []byte("x"), 0o644))
		dc := dirCache{root: m.root}
		defer dc.close()
		var st unix.Stat_t
		must(t, dc.lstat(rel(htopDir+"/data/bin/htop"), &st))
		f := fileFromStat("squatter", htopDir+"/data/bin/htop", &st)
		f.Digest = packages.SumBytes([]byte("x"))
		must(t, m.db.inTx(t.Context(), func(tx *sql.Tx) error { return putFiles(tx, []File{f}) }))
		tx, err := m.apply(m.install(htopV1(m)))
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Owner != "squatter" {
			t.Fatalf("install over another package's path: %v, want *ConflictError naming squatter", err)
		}
		must(t, tx.Abort(t.Context()))
		if got := m.read(htopDir + "/data/bin/htop"); got != "x" {
			t.Errorf("the squatter's file is now %q", got)
		}
		m.noTemps()
		m.verifyClean()
	})
	t.Run("directory in the way of an owned file", func(t *testing.T) {
		m := newMachine(t)
		v1 := htopV1(m)
		m.mustApply(m.install(v1))
		must(t, m.root.Remove(rel(htopDir+"/data/bin/htop")))
		must(t, m.root.Mkdir(rel(htopDir+"/data/bin/htop"), 0o755))
		tx, err := m.apply(Change{Kind: Reinstall, Old: m.installed("htop"), New: v1, Open: m.opener(v1)})
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Path != htopDir+"/data/bin/htop" || ce.Reason == "" {
			t.Fatalf("reinstall over a directory: %v, want *ConflictError", err)
		}
		must(t, tx.Abort(t.Context()))
		m.noTemps()
	})
	t.Run("hook reports a path outside its dirs", func(t *testing.T) {
		m := newMachine(t)
		must(t, m.root.MkdirAll("etc", 0o755))
		must(t, m.root.WriteFile("etc/shadow", []byte("secret"), 0o600))
		_, err := m.apply(m.install(m.build(src{name: "liar", version: "1", serial: 1,
			files: map[string]string{"x": "x"}, install: "copy x /etc/shadow\n"})))
		if err == nil || !strings.Contains(err.Error(), "outside") {
			t.Fatalf("hook reporting /etc/shadow: %v", err)
		}
		if n, ok, _ := m.db.Owner(t.Context(), "/etc/shadow"); ok {
			t.Errorf("/etc/shadow recorded as owned by %s", n)
		}
	})
	t.Run("two hooks of one transaction create the same path", func(t *testing.T) {
		m := newMachine(t)
		first := m.build(src{name: "first", version: "1", serial: 1, files: map[string]string{"x": "1"}, install: "copy x /usr/bin/same\n"})
		second := m.build(src{name: "second", version: "1", serial: 1, files: map[string]string{"x": "2"}, install: "copy x /usr/bin/same\n"})
		_, err := m.apply(m.install(first), m.install(second))
		var oe *OwnedError
		if !errors.As(err, &oe) || oe.Owner != "first" || oe.Want != "second" {
			t.Fatalf("second hook creating the path the first one did: %v, want *OwnedError", err)
		}
		if n, _, _ := m.db.Owner(t.Context(), "/usr/bin/same"); n != "first" {
			t.Errorf("/usr/bin/same owned by %q, want first", n)
		}
	})
	t.Run("hook creates another package's path", func(t *testing.T) {
		m := newMachine(t)
		m.mustApply(m.install(htopV1(m)))
		_, err := m.apply(m.install(m.build(src{name: "thief", version: "1", serial: 1,
			files: map[string]string{"x": "x"}, install: "copy x /usr/bin/htop\n"})))
		var oe *OwnedError
		if !errors.As(err, &oe) || oe.Owner != "htop" || oe.Want != "thief" {
			t.Fatalf("hook creating a path htop owns: %v, want *OwnedError", err)
		}
		if n, _, _ := m.db.Owner(t.Context(), "/usr/bin/htop"); n != "htop" {
			t.Errorf("/usr/bin/htop now owned by %q", n)
		}
	})
}

func TestAbortAfterPreHooks(t *testing.T) {
	m := newMachine(t)
	m.mustApply(m.install(htopV1(m)))
	before := m.tree()
	m.calls = nil
	tx, err := m.db.Begin(t.Context(), m.l, []Change{m.upgrade("htop", htopV2(m))})
	must(t, err)
	must(t, tx.Stage(t.Context()))
	must(t, tx.PreHooks(t.Context(), m.run))
	if m.exists("/usr/bin/htop") {
		t.Fatal("remove.lua did not run")
	}
	must(t, tx.Abort(t.Context()))
	if diff := cmp.Diff([]string{"htop remove.lua", "htop install.lua"}, m.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, m.tree()); diff != "" {
		t.Errorf("abort did not restore the disk (-before +after):\n%s", diff)
	}
	if p := m.installed("htop"); p.Version != "3.2.0" {
		t.Errorf("installed %s after abort", p.Version)
	}
	m.verifyClean()
	// The journal is clear: another transaction may begin.
	m.mustApply(m.upgrade("htop", htopV2(m)))
}

func TestBeginRefuses(t *testing.T) {
	m := newMachine(t)
	v1 := htopV1(m)
	m.mustApply(m.install(v1), m.install(m.build(toolSrc)))
	stale := *m.installed("htop")
	stale.Digest = packages.SumBytes([]byte("another build"))
	tests := []struct {
		name    string
		changes []Change
		want    string
	}{
		{"install of an installed package", []Change{m.install(v1)}, "install htop: already installed"},
		{"stale plan", []Change{{Kind: Remove, Old: &stale}}, "is not the one planned"},
		{"missing old", []Change{{Kind: Upgrade, New: v1, Open: m.opener(v1)}}, "needs old=true new=true"},
		{"same package twice", []Change{m.remove("htop"), m.upgrade("htop", htopV2(m))}, "appears in two changes"},
		{"no archive", []Change{{Kind: Install, New: &Package{Name: "x"}}}, "no archive to open"},
		{"rename onto an installed name", []Change{m.upgrade("tool", m.build(src{name: "htop", version: "9", serial: 9, family: familyOf("tool")}))},
			"upgrade htop: already installed"},
		{"another family", []Change{m.upgrade("htop", m.build(src{name: "htop", version: "9", serial: 9, family: familyOf("top")}))},
			"is of another family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.db.Begin(t.Context(), m.l, tt.changes)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Begin: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("unfinished transaction", func(t *testing.T) {
		if _, err := m.db.Begin(t.Context(), m.l, []Change{m.remove("htop")}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.db.Begin(t.Context(), m.l, []Change{m.remove("htop")}); err == nil || !strings.Contains(err.Error(), "unfinished") {
			t.Fatalf("Begin beside an unfinished transaction: %v", err)
		}
	})
}

func TestMoveDataDir(t *testing.T) {
	m := newMachine(t)
	m.mustApply(m.install(htopV1(m)))
	must(t, m.root.WriteFile(rel(htopDir+"/data/etc/htoprc"), []byte("mine\n"), 0o644))
	v1 := htopV1(m)
	m.l.DataDir = "/srv/packets"
	m.mustApply(Change{Kind: Reinstall, Old: m.installed("htop"), New: v1, Open: m.opener(v1)})
	if m.exists("/opt/packets/htop") {
		t.Error("the old dir survived the move")
	}
	if p := m.installed("htop"); p.DataDir != "/srv/packets/htop" {
		t.Errorf("data dir %q after the move", p.DataDir)
	}
	if got := m.read("/srv/packets/htop/data/etc/htoprc"); got != "mine\n" {
		t.Errorf("moved config = %q, want the user's", got)
	}
	m.verifyClean()
}

// An archive whose manifest is another build than the receipt names (an
// index listing the wrong digest) is refused while staging, and the abort
// leaves the disk as it was.
func TestStageRefusesAnotherBuild(t *testing.T) {
	m := newMachine(t)
	m.mustApply(m.install(m.build(toolSrc)))
	before := m.tree()
	listed := htopV1(m)
	lying := m.build(src{name: "htop", version: "9.9", serial: 9, files: map[string]string{"bin/htop": "not htop 3.2.0\n"}})
	tx, err := m.db.Begin(t.Context(), m.l, []Change{{Kind: Install, New: listed, Open: m.opener(lying)}})
	must(t, err)
	err = tx.Stage(t.Context())
	var mismatch *packages.BuildMismatchError
	if !errors.As(err, &mismatch) || mismatch.Got.Version != "9.9" || mismatch.Want.Version != listed.Version {
		t.Fatalf("Stage: %v, want a *packages.BuildMismatchError naming 9.9 and %s", err, listed.Version)
	}
	must(t, tx.Abort(t.Context()))
	if diff := cmp.Diff(before, m.tree()); diff != "" {
		t.Errorf("the refused archive changed the disk (-before +after):\n%s", diff)
	}
	if m.exists(htopDir) {
		t.Errorf("%s exists after the refusal", htopDir)
	}
	m.verifyClean()
}

// A hostile archive the signed index vouches for (the repository's key
// signed it) reaches Stage unread: Stage refuses it at the bad entry, after
// staging the good ones before it, and the abort leaves the disk as it was,
// both for a new package (staged whole) and over an installed one (file by
// file).
func TestStageRefusesHostileArchive(t *testing.T) {
	for _, upgrade := range []bool{false, true} {
		t.Run(map[bool]string{false: "install", true: "upgrade"}[upgrade], func(t *testing.T) {
			m := newMachine(t)
			if upgrade {
				m.mustApply(m.install(htopV1(m)))
			}
			// The data dir, which Stage makes first and no abort removes
			// (an empty /opt may have been the admin's).
			must(t, m.root.MkdirAll("opt/packets", 0o755))
			before := m.tree()
			listed := htopV2(m)
			m.cache[listed.Digest] = hostileArchive(t, listed, "data/bin/../../../../etc/passwd")
			c := m.install(listed)
			if upgrade {
				c = m.upgrade("htop", listed)
			}
			tx, err := m.db.Begin(t.Context(), m.l, []Change{c})
			must(t, err)
			err = tx.Stage(t.Context())
			var ee *packages.EntryError
			if !errors.As(err, &ee) || !strings.Contains(ee.Path, "etc/passwd") {
				t.Fatalf("Stage: %v, want an *EntryError naming the entry", err)
			}
			must(t, tx.Abort(t.Context()))
			if diff := cmp.Diff(before, m.tree()); diff != "" {
				t.Errorf("the hostile archive changed the disk (-before +after):\n%s", diff)
			}
			m.noTemps()
			m.verifyClean()
		})
	}
}

// hostileArchive writes an archive holding p's manifest, a few good files
// and then an entry named bad, and returns its path.
func hostileArchive(t *testing.T, p *Package, bad string) string {
	t.Helper()
	return handArchive(t, p, [2]string{"data/bin/htop", "a good file first"},
		[2]string{"data/share/doc/README", "and another"}, [2]string{bad, "root::0:0::/:/bin/sh\n"})
}

// handArchive writes an archive as a tar tool would, with no SumsFile:
// p's manifest, data/ and data/bin/, then files (archive path, content) in
// the order given. It returns its path.
func handArchive(t *testing.T, p *Package, files ...[2]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	must(t, err)
	tw := tar.NewWriter(zw)
	add := func(name string, typ byte, body string) {
		must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o755, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	man := packages.Manifest{Name: p.Name, Version: p.Version, Family: p.Family, Serial: p.Serial}
	add(packages.ManifestFile, tar.TypeReg, string(man.Encode()))
	add("data/", tar.TypeDir, "")
	add("data/bin/", tar.TypeDir, "")
	for _, f := range files {
		add(f[0], tar.TypeReg, f[1])
	}
	must(t, tw.Close())
	must(t, zw.Close())
	out := filepath.Join(t.TempDir(), "hand.tar.zst")
	must(t, os.WriteFile(out, buf.Bytes(), 0o644))
	return out
}

// An archive without a SumsFile (built by a packets before it, or by
// hand) installs as it always did: each file hashed as it is written, so
// that installed.db records what is on disk.
func TestInstallArchiveWithoutSums(t *testing.T) {
	m := newMachine(t)
	listed := htopV2(m)
	files := map[string]string{"data/bin/htop": "htop, by hand", "data/share/doc/README": "read me"}
	m.cache[listed.Digest] = handArchive(t, listed, [2]string{"data/bin/htop", files["data/bin/htop"]},
		[2]string{"data/share/doc/README", files["data/share/doc/README"]})
	m.mustApply(m.install(listed))
	got, err := m.db.Files(t.Context(), "htop")
	must(t, err)
	hashed := 0
	for _, f := range got {
		for p, body := range files {
			if strings.HasSuffix(f.Path, "/"+p) {
				hashed++
				if f.Digest != packages.SumBytes([]byte(body)) {
					t.Errorf("%s: recorded digest %s, want the content's", f.Path, f.Digest.Short())
				}
			}
		}
	}
	if hashed != len(files) {
		t.Errorf("%d of the %d files recorded: %+v", hashed, len(files), got)
	}
	m.verifyClean()
}

// PostHooks hands each install hook over before it reads the result of the
// one before (a runner in another process reads it as soon as it is free):
// the hooks still run in plan order, one at a time, and each package owns
// what its own hook created.
func TestPostHooksSendAhead(t *testing.T) {
	m := newMachine(t)
	var batch []Change
	for _, name := range []string{"aa", "bb", "cc", "dd"} {
		p := m.build(src{name: name, version: "1", serial: 1, files: map[string]string{"bin/" + name: name},
			install: "copy bin/" + name + " /usr/bin/" + name + "\n"})
		batch = append(batch, m.install(p))
	}
	// One worker, as one sandbox child: it takes the hooks in the order
	// they are sent and runs each to its end before the next.
	jobs := make(chan func(), len(batch))
	go func() {
		for job := range jobs {
			job()
		}
	}()
	defer close(jobs)
	ahead, maxAhead := 0, 0 // hooks sent and not yet read
	send := func(ctx context.Context, pkg *Package, script string, src []byte) func() ([]string, error) {
		ahead++
		maxAhead = max(maxAhead, ahead)
		done := make(chan struct{})
		var created []string
		var err error
		jobs <- func() {
			created, err = m.run(ctx, pkg, script, src)
			close(done)
		}
		return func() ([]string, error) {
			<-done
			ahead--
			return created, err
		}
	}
	tx, err := m.db.Begin(t.Context(), m.l, batch)
	must(t, err)
	must(t, tx.Stage(t.Context()))
	must(t, tx.PreHooks(t.Context(), m.run))
	must(t, tx.Commit(t.Context()))
	must(t, tx.PostHooks(t.Context(), send))
	must(t, tx.Done(t.Context()))
	want := []string{"aa install.lua", "bb install.lua", "cc install.lua", "dd install.lua"}
	if diff := cmp.Diff(want, m.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	if maxAhead != 2 {
		t.Errorf("at most %d hooks were out at once, want 2 (one running, the next sent)", maxAhead)
	}
	for _, name := range []packages.Name{"aa", "bb", "cc", "dd"} {
		if owner, ok, err := m.db.Owner(t.Context(), "/usr/bin/"+string(name)); err != nil || !ok || owner != name {
			t.Errorf("/usr/bin/%s owned by %q (%v, %v), want %s", name, owner, ok, err, name)
		}
	}
	m.verifyClean()
}

// What a batch of installs records while it extracts (before anything is
// published) is what the disk holds once it is: directories of every mode
// (one read-only, one sticky), symlinks, config files; and so is what a
// roll forward records afresh (the crash tests' "installs" scenario).
func TestInstallRecordsWhatIsPublished(t *testing.T) {
	m := newMachine(t)
	p := m.build(src{name: "modes", version: "1", serial: 1,
		files: map[string]string{"ro/": "", "ro/file": "in a read-only dir", "tmp/": "", "private/": "",
			"bin/tool": "tool", "etc/modes.conf": "x=1\n"},
		modes:  map[string]fs.FileMode{"ro/": 0o555, "tmp/": 0o777 | fs.ModeSticky, "private/": 0o700, "bin/tool": 0o755},
		links:  map[string]string{"bin/alias": "tool"},
		config: []string{"etc/modes.conf"}})
	m.mustApply(m.install(p))
	m.verifyClean()
	files, err := m.db.Files(t.Context(), "modes")
	must(t, err)
	got := map[string]string{}
	for _, f := range files {
		got[strings.TrimPrefix(f.Path, "/opt/packets/modes/data/")] = fmt.Sprintf("%s %s %v", f.Type, modeString(f.Mode), f.Config)
	}
	for path, want := range map[string]string{
		"ro": "dir 0555 false", "tmp": "dir 1777 false", "private": "dir 0700 false",
		"bin/alias": "symlink 0777 false", "etc/modes.conf": "file 0644 true", "bin/tool": "file 0755 false",
	} {
		if got[path] != want {
			t.Errorf("%s recorded as %q, want %q", path, got[path], want)
		}
	}
}

// A batch of installs holds installed.db's write lock from the start of
// its stage, while an archive still downloads: another process (packets
// list, plan, verify) still opens and reads the database without waiting.
func TestReadersDoNotWaitForAStage(t *testing.T) {
	m := newMachine(t)
	nano, less := m.build(src{name: "nano", version: "8.0", serial: 9, files: map[string]string{"bin/nano": "nano"}}),
		m.build(src{name: "less", version: "1", serial: 1, files: map[string]string{"bin/less": "less"}})
	release := make(chan struct{})
	slow := m.install(nano)
	slow.Wait = func(ctx context.Context) (string, error) {
		select {
		case <-release:
			return "https://mirror.test/slow", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	tx, err := m.db.Begin(t.Context(), m.l, []Change{m.install(less), slow})
	must(t, err)
	staged := make(chan error, 1)
	go func() { staged <- tx.Stage(t.Context()) }()

	for range 3 { // Begin's transaction is over; the stage's may have started
		other, err := Open(t.Context(), m.dbPath, Options{BusyTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("Open while an archive downloads: %v", err)
		}
		if _, err := other.Snapshot(t.Context()); err != nil {
			t.Errorf("a reader while an archive downloads: %v", err)
		}
		if err := other.Check(t.Context()); err != nil {
			t.Errorf("quick_check while an archive downloads: %v", err)
		}
		must(t, other.Close())
		time.Sleep(20 * time.Millisecond)
	}

	close(release)
	must(t, <-staged)
	must(t, tx.PreHooks(t.Context(), m.run))
	must(t, tx.Commit(t.Context()))
	must(t, tx.PostHooks(t.Context(), HookFunc(m.run).Deferred()))
	must(t, tx.Done(t.Context()))
	if p := m.installed("nano"); p.Source != "https://mirror.test/slow" {
		t.Errorf("nano's source %q, want the one its Wait reported", p.Source)
	}
	m.verifyClean()
}

// Stage extracts the archives that have arrived before it waits for one
// that has not: with one worker, the archive still downloading is staged
// last, although it comes first.
func TestStageTakesArrivedArchivesFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	m := newMachine(t)
	var (
		mu     sync.Mutex
		opened []string
		arrive = make(chan struct{})
	)
	change := func(name string) Change {
		c := m.install(m.build(src{name: name, version: "1", serial: 1, files: map[string]string{"bin/" + name: name}}))
		open := c.Open
		c.Open = func() (io.ReadCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			opened = append(opened, name)
			if len(opened) == 2 {
				close(arrive) // the slow download arrives once the other two are staged
			}
			return open()
		}
		return c
	}
	slow := change("nano")
	slow.Ready = func() bool {
		select {
		case <-arrive:
			return true
		default:
			return false
		}
	}
	slow.Wait = func(ctx context.Context) (string, error) {
		select {
		case <-arrive:
		case <-time.After(2 * time.Second): // never arrives: staged in plan order, the test fails
		}
		return "https://mirror.test/slow", nil
	}
	tx, err := m.db.Begin(t.Context(), m.l, []Change{slow, change("less"), change("vim")})
	must(t, err)
	must(t, tx.Stage(t.Context()))
	must(t, tx.Abort(t.Context()))
	if want := []string{"less", "vim", "nano"}; !slices.Equal(opened, want) {
		t.Errorf("staged %v, want %v", opened, want)
	}
}

// The first archive refused stops the stage at once: an extraction that
// waits for its archive to download is not waited for, and the error is
// the refusal's alone.
func TestStageStopsAtFirstFailure(t *testing.T) {
	m := newMachine(t)
	listed := htopV2(m)
	m.cache[listed.Digest] = hostileArchive(t, listed, "data/../../escape")
	waiting := m.install(m.build(src{name: "nano", version: "8.0", serial: 9, files: map[string]string{"bin/nano": "nano"}}))
	waiting.Wait = func(ctx context.Context) (string, error) {
		<-ctx.Done() // its download never ends
		return "", ctx.Err()
	}
	tx, err := m.db.Begin(t.Context(), m.l, []Change{m.install(listed), waiting})
	must(t, err)
	staged := make(chan error, 1)
	go func() { staged <- tx.Stage(t.Context()) }()
	select {
	case err = <-staged:
	case <-time.After(10 * time.Second):
		t.Fatal("Stage still waits for a download after an archive was refused")
	}
	var ee *packages.EntryError
	if !errors.As(err, &ee) || errors.Is(err, context.Canceled) {
		t.Errorf("Stage: %v, want the refusal alone", err)
	}
	must(t, tx.Abort(t.Context()))
	m.noTemps()
}

// A package dir staged whole that someone makes before the commit is
// refused while the transaction can still be aborted: what they put there
// stays as it is, and nothing of the package is published.
func TestCommitRefusesADirMadeMeanwhile(t *testing.T) {
	for _, installsOnly := range []bool{true, false} {
		t.Run(map[bool]string{true: "installs", false: "with a removal"}[installsOnly], func(t *testing.T) {
			m := newMachine(t)
			batch := []Change{m.install(htopV1(m))}
			if !installsOnly {
				m.mustApply(m.install(m.build(toolSrc)))
				batch = append(batch, m.remove("tool"))
			}
			tx, err := m.db.Begin(t.Context(), m.l, batch)
			must(t, err)
			must(t, tx.Stage(t.Context()))
			must(t, tx.PreHooks(t.Context(), m.run))
			must(t, m.root.MkdirAll(rel(htopDir+"/data/etc"), 0o755))
			must(t, m.root.WriteFile(rel(htopDir+"/data/etc/htoprc"), []byte("mine\n"), 0o644))
			err = tx.Commit(t.Context())
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Path != htopDir || tx.Decided() {
				t.Fatalf("Commit: %v (decided %v), want a *ConflictError for %s before the decision point", err, tx.Decided(), htopDir)
			}
			must(t, tx.Abort(t.Context()))
			var theirs []string
			for p := range m.tree() {
				if strings.HasPrefix(p, "opt/packets/htop/") {
					theirs = append(theirs, p)
				}
			}
			slices.Sort(theirs)
			if want := []string{"opt/packets/htop/data", "opt/packets/htop/data/etc", "opt/packets/htop/data/etc/htoprc"}; !slices.Equal(theirs, want) || m.read(htopDir+"/data/etc/htoprc") != "mine\n" {
				t.Errorf("the dir made meanwhile holds %q, want only what was made", theirs)
			}
			if got := m.names(); installsOnly && len(got) != 0 || !installsOnly && !slices.Equal(got, []packages.Name{"tool"}) {
				t.Errorf("installed after the abort: %v", got)
			}
			m.noTemps()
			m.verifyClean()
		})
	}
}

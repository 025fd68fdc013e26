package installed

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/packets-dev/packets/packages"
)

// machine is a --root directory with its installed.db, a cache of built
// archives and a hook runner, for engine tests.
type machine struct {
	t      testing.TB
	dir    string
	root   *os.Root
	dbPath string
	db     *DB
	l      Layout
	cache  map[packages.Digest]string // archive files by digest
	calls  []string                   // hooks run: "htop install.lua"
}

func newMachine(t testing.TB) *machine {
	return newMachineIn(t, t.TempDir())
}

func newMachineIn(t testing.TB, dir string) *machine {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	m := &machine{t: t, dir: dir, root: root, dbPath: filepath.Join(dir, "var/lib/packets/installed.db"),
		cache: map[packages.Digest]string{}}
	m.l = Layout{Root: root, DataDir: "/opt/packets", BinDir: "/usr/bin"}
	m.reopen()
	return m
}

// reopen closes the database and opens it again, as the next command
// after a crash would.
func (m *machine) reopen() {
	m.t.Helper()
	if m.db != nil {
		m.db.Close()
	}
	db, err := Open(m.t.Context(), m.dbPath, Options{})
	if err != nil {
		m.t.Fatal(err)
	}
	m.db = db
	m.t.Cleanup(func() { db.Close() })
}

// src describes a package source to build.
type src struct {
	name, version string
	serial        int64
	family        packages.Family   // default: derived from name
	files         map[string]string // data-relative path -> content; a trailing "/" makes a dir
	modes         map[string]fs.FileMode
	links         map[string]string // data-relative path -> symlink target
	config        []string          // data-relative
	install       string            // install.lua in the test hook language (see run)
	remove        string
}

func familyOf(name string) packages.Family {
	return packages.Family(fmt.Sprintf("%08x-0000-4000-8000-000000000000", crc32.ChecksumIEEE([]byte(name))))
}

// build makes s's archive with packages.BuildFile, caches it and returns
// the receipt a planner would hand the engine.
func (m *machine) build(s src) *Package {
	m.t.Helper()
	dir := m.t.TempDir()
	if s.family == "" {
		s.family = familyOf(s.name)
	}
	man := packages.Manifest{Name: packages.Name(s.name), Version: packages.Version(s.version), Family: s.family, Serial: s.serial}
	for _, c := range s.config {
		man.Files.Config = append(man.Files.Config, "data/"+c)
	}
	write := func(p string, data []byte, mode fs.FileMode) {
		full := filepath.Join(dir, p)
		must(m.t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(m.t, os.WriteFile(full, data, mode))
		must(m.t, os.Chmod(full, mode))
	}
	if s.install != "" {
		man.Hooks.Install = packages.InstallHook
		write(packages.InstallHook, []byte(s.install), 0o644)
	}
	if s.remove != "" {
		man.Hooks.Remove = packages.RemoveHook
		write(packages.RemoveHook, []byte(s.remove), 0o644)
	}
	write(packages.ManifestFile, man.Encode(), 0o644)
	must(m.t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	for p, content := range s.files {
		if strings.HasSuffix(p, "/") {
			must(m.t, os.MkdirAll(filepath.Join(dir, "data", p), 0o755))
			continue
		}
		mode := fs.FileMode(0o644)
		if md, ok := s.modes[p]; ok {
			mode = md
		}
		write(filepath.Join("data", p), []byte(content), mode)
	}
	for p, target := range s.links {
		full := filepath.Join(dir, "data", p)
		must(m.t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(m.t, os.Symlink(target, full))
	}
	for p, md := range s.modes { // directories' modes, once their files are in
		if strings.HasSuffix(p, "/") {
			must(m.t, os.Chmod(filepath.Join(dir, "data", p), md))
		}
	}
	out := filepath.Join(m.t.TempDir(), s.name+".tar.zst")
	got, d, err := packages.BuildFile(dir, out)
	if err != nil {
		m.t.Fatalf("build %s: %v", s.name, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		m.t.Fatal(err)
	}
	m.cache[d] = out
	return &Package{Name: got.Name, Version: got.Version, Family: got.Family, Serial: got.Serial,
		Digest: d, Size: fi.Size(), Source: "https://mirror.test/packets", InstalledBy: "root"}
}

// open is the recovery opener: the cache by digest.
func (m *machine) open(d packages.Digest) (io.ReadCloser, error) {
	p, ok := m.cache[d]
	if !ok {
		return nil, fmt.Errorf("%s: not in the cache", d.Short())
	}
	return os.Open(p)
}

func (m *machine) opener(p *Package) func() (io.ReadCloser, error) {
	d := p.Digest
	return func() (io.ReadCloser, error) { return m.open(d) }
}

// run is the test hook runner. Scripts are lines of:
//
//	copy DATA-PATH MACHINE-PATH   copy a file of the package, creating the copy
//	rm MACHINE-PATH               remove a path, if it exists
//	fail                          fail the hook here
func (m *machine) run(_ context.Context, pkg *Package, script string, src []byte) ([]string, error) {
	m.calls = append(m.calls, string(pkg.Name)+" "+script)
	var created []string
	for line := range strings.Lines(string(src)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "--"):
		case f[0] == "copy" && len(f) == 3:
			data, err := m.root.ReadFile(rel(path.Join(pkg.DataDir, "data", f[1])))
			if err != nil {
				return created, err
			}
			if err := m.root.MkdirAll(rel(path.Dir(f[2])), 0o755); err != nil {
				return created, err
			}
			if err := m.root.WriteFile(rel(f[2]), data, 0o755); err != nil {
				return created, err
			}
			created = append(created, f[2])
		case f[0] == "rm" && len(f) == 2:
			if err := m.root.Remove(rel(f[1])); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return created, err
			}
		case f[0] == "fail":
			return created, errors.New("the hook says fail")
		default:
			return created, fmt.Errorf("bad hook line %q", line)
		}
	}
	return created, nil
}

// apply runs a whole transaction.
func (m *machine) apply(changes ...Change) (*Tx, error) {
	ctx := m.t.Context()
	tx, err := m.db.Begin(ctx, m.l, changes)
	if err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{
		tx.Stage,
		func(ctx context.Context) error { return tx.PreHooks(ctx, m.run) },
		tx.Commit,
		func(ctx context.Context) error { return tx.PostHooks(ctx, HookFunc(m.run).Deferred()) },
		tx.Done,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return tx, err
		}
	}
	return tx, nil
}

func (m *machine) mustApply(changes ...Change) *Tx {
	m.t.Helper()
	tx, err := m.apply(changes...)
	if err != nil {
		m.t.Fatal(err)
	}
	return tx
}

func (m *machine) installed(name packages.Name) *Package {
	m.t.Helper()
	p, err := m.db.Package(m.t.Context(), name)
	if err != nil {
		m.t.Fatal(err)
	}
	return p
}

func (m *machine) install(p *Package) Change {
	return Change{Kind: Install, New: p, Open: m.opener(p)}
}

func (m *machine) upgrade(old packages.Name, p *Package) Change {
	return Change{Kind: Upgrade, Old: m.installed(old), New: p, Open: m.opener(p)}
}

func (m *machine) remove(old packages.Name) Change {
	return Change{Kind: Remove, Old: m.installed(old)}
}

// read returns the content of a machine path, or "<missing>".
func (m *machine) read(p string) string {
	b, err := m.root.ReadFile(rel(p))
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		m.t.Fatal(err)
	}
	return string(b)
}

func (m *machine) exists(p string) bool {
	_, err := m.root.Lstat(rel(p))
	return err == nil
}

// verifyClean fails the test unless installed.db matches the disk, by
// content and by stat (verify --fast, which compares mtimes).
func (m *machine) verifyClean() {
	m.t.Helper()
	for _, fast := range []bool{false, true} {
		drift, err := m.db.Verify(m.t.Context(), m.root, nil, fast)
		if err != nil {
			m.t.Fatal(err)
		}
		for _, d := range drift {
			m.t.Errorf("verify (fast %v): %s", fast, d)
		}
	}
}

// noTemps fails the test if any staged temporary is left under the root.
func (m *machine) noTemps() {
	m.t.Helper()
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), packages.TempPrefix) {
			m.t.Errorf("temp left behind: %s", p)
		}
		return err
	})
	must(m.t, err)
}

// tree describes every path under the root but installed.db: type, mode
// and content hash or link target. Two machines in the same state have
// equal trees.
func (m *machine) tree() map[string]string {
	m.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(m.dir, p)
		if r == "var" || strings.HasPrefix(r, "var/") || r == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" %x", sum[:8])
		}
		out[r] = desc
		return nil
	})
	must(m.t, err)
	return out
}

func (m *machine) names() []packages.Name {
	m.t.Helper()
	s, err := m.db.Snapshot(m.t.Context())
	if err != nil {
		m.t.Fatal(err)
	}
	var out []packages.Name
	for n := range s.Packages {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

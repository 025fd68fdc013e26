package index

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/google/uuid"

	"github.com/packets-dev/packets/packages"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// pkgSpec describes a package source for a test archive.
type pkgSpec struct {
	name, version string
	serial        int64
	family        string // "" derives one from the name
	desc          string
	deps          []string
	files         map[string]string // path under data/ → content; "-> target" makes a symlink
	install       bool
	config        []string
}

func (s pkgSpec) familyID() string {
	if s.family != "" {
		return s.family
	}
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(s.name)).String()
}

// writeSource writes s as a package source directory.
func writeSource(t testing.TB, dir string, s pkgSpec) {
	t.Helper()
	var m strings.Builder
	fmt.Fprintf(&m, "[Info]\nname = %q\nversion = %q\ndescription = %q\nauthor = \"tests\"\n", s.name, s.version, s.desc)
	fmt.Fprintf(&m, "family = %q\nserial = %d\ndependencies = [", s.familyID(), s.serial)
	for i, d := range s.deps {
		if i > 0 {
			m.WriteString(", ")
		}
		fmt.Fprintf(&m, "%q", d)
	}
	m.WriteString("]\n")
	if s.install {
		m.WriteString("\n[Hooks]\ninstall = \"install.lua\"\n")
		mustWrite(t, filepath.Join(dir, "install.lua"), "-- nothing\n")
	}
	if len(s.config) > 0 {
		fmt.Fprintf(&m, "\n[Files]\nconfig = [%q]\n", strings.Join(s.config, `", "`))
	}
	mustWrite(t, filepath.Join(dir, "manifest.toml"), m.String())
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, content := range s.files {
		full := filepath.Join(dir, "data", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mustWrite(t, full, content)
	}
}

func mustWrite(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// repoFixture is a repository directory with a signing key.
type repoFixture struct {
	dir     string
	key     minisign.PrivateKey
	pub     minisign.PublicKey
	now     time.Time     // BuildRepo's clock
	expires time.Duration // BuildRepo's Expires
	srcs    string
}

func newRepo(t testing.TB) *repoFixture {
	t.Helper()
	pub, key, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &repoFixture{dir: t.TempDir(), key: key, pub: pub, now: t0, srcs: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(r.dir, PackagesDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// add builds s into packages/<file> (default name-version.tar.zst).
func (r *repoFixture) add(t testing.TB, s pkgSpec, file ...string) (string, packages.Digest) {
	t.Helper()
	name := fmt.Sprintf("%s-%s.tar.zst", s.name, s.version)
	if len(file) > 0 {
		name = file[0]
	}
	src, err := os.MkdirTemp(r.srcs, s.name+"-*")
	if err != nil {
		t.Fatal(err)
	}
	writeSource(t, src, s)
	_, d, err := packages.BuildFile(src, filepath.Join(r.dir, PackagesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return name, d
}

// index runs BuildRepo at r.now.
func (r *repoFixture) index(t testing.TB) Release {
	t.Helper()
	rel, _, err := r.indexStats(t)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func (r *repoFixture) indexStats(t testing.TB) (Release, BuildStats, error) {
	t.Helper()
	return BuildRepoStats(t.Context(), BuildOptions{Dir: r.dir, Key: r.key, Expires: r.expires, Now: func() time.Time { return r.now }})
}

// readFile reads a file of the repository.
func (r *repoFixture) readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// the packages of the standard test repository.
var (
	specNcurses = pkgSpec{name: "ncurses", version: "6.4", serial: 1, desc: "terminal handling library",
		files: map[string]string{"lib/libncursesw.so.6": "elf", "lib/libncursesw.so": "-> libncursesw.so.6", "share/terminfo/x/xterm": "ti"}}
	specHtop = pkgSpec{name: "htop", version: "3.3.0", serial: 4, desc: "interactive process viewer", deps: []string{"ncurses >= 6.0"},
		files: map[string]string{"bin/htop": "#!htop", "share/man/man1/htop.1": "man", "share/doc/htop/README": "readme"}, install: true}
	specSbin = pkgSpec{name: "procps", version: "4.0.4", serial: 2, desc: "utilities to browse /proc (top, ps)",
		files:  map[string]string{"sbin/htop": "not the real htop", "bin/top": "top", "data/bin/htop": "nested", "etc/procps.conf": "x=1"},
		config: []string{"data/etc/procps.conf"}}
)

// standardRepo is a repository holding ncurses, htop and procps, indexed once.
func standardRepo(t testing.TB) (*repoFixture, Release) {
	t.Helper()
	r := newRepo(t)
	for _, s := range []pkgSpec{specNcurses, specHtop, specSbin} {
		r.add(t, s)
	}
	return r, r.index(t)
}

// names lists the names of as.
func names(as []packages.Available) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%s#%d", a.Name, a.Serial)
	}
	return out
}

// leftovers lists temporary files left in dir.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), tmpInfix) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

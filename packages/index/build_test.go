package index

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/packets-dev/packets/packages"
)

func TestBuildRepo(t *testing.T) {
	r := newRepo(t)
	_, htopDigest := r.add(t, specHtop)
	r.add(t, specNcurses)
	rel, stats, err := r.indexStats(t)
	if err != nil {
		t.Fatal(err)
	}

	// The release names the index by size and hash, signed by the key.
	want := Release{Repo: DefaultRepoName, Version: 1, Issued: t0, Expires: t0.Add(DefaultExpiry), Index: rel.Index}
	if diff := cmp.Diff(want, rel); diff != "" {
		t.Errorf("release (-want +got):\n%s", diff)
	}
	d, n, err := packages.SumReader(strings.NewReader(string(r.readFile(t, "index-1.db"))))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(IndexRef{File: "index-1.db", Size: n, SHA256: d}, rel.Index); diff != "" {
		t.Errorf("index ref (-want +got):\n%s", diff)
	}
	got, err := VerifyRelease(r.readFile(t, ReleaseFile), r.readFile(t, SignatureFile), []minisign.PublicKey{r.pub})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rel, got); diff != "" {
		t.Errorf("published release (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(BuildStats{Packages: 2, Files: 6}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	// The index holds every manifest field and the archive's facts.
	ix, err := Open(filepath.Join(r.dir, "index-1.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	htop, err := ix.Lookup(t.Context(), "htop")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(r.dir, "packages", "htop-3.3.0.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	ncurses, _ := packages.ParseDependency("ncurses >= 6.0")
	wantHtop := []packages.Available{{
		Manifest: packages.Manifest{
			Name: "htop", Version: "3.3.0", Description: "interactive process viewer", Author: "tests",
			Dependencies: []packages.Dependency{ncurses}, Family: packages.Family(specHtop.familyID()), Serial: 4,
			Hooks: packages.Hooks{Install: packages.InstallHook},
		},
		Filename: "packages/htop-3.3.0.tar.zst", Digest: htopDigest, Size: fi.Size(),
		InstalledSize: int64(len("#!htop") + len("man") + len("readme")),
	}}
	if diff := cmp.Diff(wantHtop, htop); diff != "" {
		t.Errorf("htop (-want +got):\n%s", diff)
	}
	files, err := ix.Files(t.Context(), "ncurses", 1)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{
		"/opt/packets/ncurses/data/lib/libncursesw.so",
		"/opt/packets/ncurses/data/lib/libncursesw.so.6",
		"/opt/packets/ncurses/data/share/terminfo/x/xterm",
	}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestBuildRepoReindex(t *testing.T) {
	r, rel1 := standardRepo(t)
	ix1 := openIndex(t, filepath.Join(r.dir, rel1.Index.File))
	all1, err := ix1.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changed: a new version all the same, every row reused, and
	// the same catalogue.
	r.now = t0.Add(time.Hour)
	rel2, stats, err := r.indexStats(t)
	if err != nil {
		t.Fatal(err)
	}
	if rel2.Version != 2 || stats.Reused != 3 || stats.Packages != 3 {
		t.Errorf("second run: version %d, stats %+v; want version 2, 3 of 3 reused", rel2.Version, stats)
	}
	ix2 := openIndex(t, filepath.Join(r.dir, rel2.Index.File))
	all2, err := ix2.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all1, all2); diff != "" {
		t.Errorf("reused catalogue (-want +got):\n%s", diff)
	}
	for _, a := range all1 {
		f1, err1 := ix1.Files(t.Context(), a.Name, a.Serial)
		f2, err2 := ix2.Files(t.Context(), a.Name, a.Serial)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if diff := cmp.Diff(f1, f2); diff != "" {
			t.Errorf("%s files (-want +got):\n%s", a.Name, diff)
		}
	}

	// A renamed archive is reused under its new name; a new build is read.
	if err := os.Rename(filepath.Join(r.dir, "packages", "htop-3.3.0.tar.zst"), filepath.Join(r.dir, "packages", "htop.tar.zst")); err != nil {
		t.Fatal(err)
	}
	ncurses2 := specNcurses
	ncurses2.version, ncurses2.serial = "6.5", 2
	r.add(t, ncurses2)
	rel3, stats, err := r.indexStats(t)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Reused != 3 || stats.Packages != 4 {
		t.Errorf("third run: stats %+v; want 3 of 4 reused", stats)
	}
	ix3 := openIndex(t, filepath.Join(r.dir, rel3.Index.File))
	htop, err := ix3.Lookup(t.Context(), "htop")
	if err != nil || len(htop) != 1 || htop[0].Filename != "packages/htop.tar.zst" {
		t.Errorf("renamed htop: %v, %v; want one row named packages/htop.tar.zst", names(htop), err)
	}

	// Only the current and the previous index are kept.
	got, _ := filepath.Glob(filepath.Join(r.dir, "index-*.db"))
	want := []string{filepath.Join(r.dir, "index-2.db"), filepath.Join(r.dir, "index-3.db")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("index files (-want +got):\n%s", diff)
	}
}

func TestBuildRepoDamagedPreviousIndex(t *testing.T) {
	r, rel := standardRepo(t)
	p := filepath.Join(r.dir, rel.Index.File)
	b := r.readFile(t, rel.Index.File)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rel2, stats, err := r.indexStats(t)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Reused != 0 || stats.Packages != 3 || rel2.Version != 2 {
		t.Errorf("stats %+v, version %d; want nothing reused from a damaged index, 3 packages, version 2", stats, rel2.Version)
	}
}

func TestBuildRepoRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, r *repoFixture)
		want  []string // substrings of the error
	}{{
		name: "same family and serial",
		setup: func(t *testing.T, r *repoFixture) {
			r.add(t, specHtop)
			other := specHtop
			other.version = "3.3.1"
			r.add(t, other)
		},
		want: []string{"packages/htop-3.3.0.tar.zst", "packages/htop-3.3.1.tar.zst", "different builds", "higher serial"},
	}, {
		name: "the same archive twice",
		setup: func(t *testing.T, r *repoFixture) {
			r.add(t, specHtop)
			r.add(t, specHtop, "copy.tar.zst")
		},
		want: []string{"packages/copy.tar.zst and packages/htop-3.3.0.tar.zst are the same archive", "remove one"},
	}, {
		name: "not an archive",
		setup: func(t *testing.T, r *repoFixture) {
			r.add(t, specHtop)
			mustWrite(t, filepath.Join(r.dir, "packages", "junk.tar.zst"), "this is not zstd")
			mustWrite(t, filepath.Join(r.dir, "packages", "junk2.tar.zst"), "neither is this")
		},
		want: []string{"packages/junk.tar.zst: ", "packages/junk2.tar.zst: "},
	}, {
		name: "a name mirrors cannot serve",
		setup: func(t *testing.T, r *repoFixture) {
			r.add(t, specHtop, "htop 3.tar.zst")
		},
		want: []string{`packages/htop 3.tar.zst: rename it`},
	}, {
		// The index vouches for each archive's sha256sums (installs trust
		// it unhashed), so it refuses one that does not match the files.
		name: "a sha256sums that lies",
		setup: func(t *testing.T, r *repoFixture) {
			name, _ := r.add(t, specHtop)
			lieAboutSums(t, filepath.Join(r.dir, PackagesDir, name))
		},
		want: []string{"packages/htop-3.3.0.tar.zst: ", "content does not match its digest in sha256sums"},
	}, {
		name: "no packages directory",
		setup: func(t *testing.T, r *repoFixture) {
			os.Remove(filepath.Join(r.dir, "packages"))
		},
		want: []string{"packages does not exist"},
	}, {
		name: "damaged previous release",
		setup: func(t *testing.T, r *repoFixture) {
			mustWrite(t, filepath.Join(r.dir, ReleaseFile), "version = 3\n")
		},
		want: []string{"previous release", "missing", "fix it"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t)
			tt.setup(t, r)
			before, _ := os.ReadFile(filepath.Join(r.dir, ReleaseFile))
			_, _, err := r.indexStats(t)
			if err == nil {
				t.Fatal("BuildRepo succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// Nothing was published.
			after, _ := os.ReadFile(filepath.Join(r.dir, ReleaseFile))
			if string(before) != string(after) {
				t.Errorf("release.toml changed to %q", after)
			}
			if got, _ := filepath.Glob(filepath.Join(r.dir, "index-*.db")); len(got) > 0 {
				t.Errorf("index files written: %v", got)
			}
			if got := leftovers(t, r.dir); len(got) > 0 {
				t.Errorf("temporary files left: %v", got)
			}
		})
	}
}

func TestBuildRepoLocked(t *testing.T) {
	r := newRepo(t)
	d, err := os.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, _, err = r.indexStats(t)
	if err == nil || !strings.Contains(err.Error(), "another 'packets repo index' is running") {
		t.Errorf("err = %v; want a refusal naming the other run", err)
	}
}

func TestBuildRepoOptions(t *testing.T) {
	r := newRepo(t)
	r.add(t, specNcurses)
	rel, err := BuildRepo(t.Context(), BuildOptions{Dir: r.dir, Key: r.key, Repo: "extra", Expires: 48 * time.Hour, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Repo != "extra" || !rel.Expires.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("release %+v; want repo extra expiring after 48h", rel)
	}
	// The name sticks when not given again.
	rel, err = BuildRepo(t.Context(), BuildOptions{Dir: r.dir, Key: r.key, Now: func() time.Time { return t0 }})
	if err != nil || rel.Repo != "extra" {
		t.Errorf("second run: repo %q, err %v; want extra", rel.Repo, err)
	}
	for _, opt := range []BuildOptions{
		{Dir: r.dir, Key: r.key, Repo: "Bad Name"},
		{Dir: r.dir, Key: r.key, Expires: -time.Hour},
	} {
		if _, err := BuildRepo(t.Context(), opt); err == nil {
			t.Errorf("BuildRepo(%+v) succeeded", opt)
		}
	}
	if _, err := BuildRepo(t.Context(), BuildOptions{Dir: filepath.Join(r.dir, "missing"), Key: r.key}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: err = %v", err)
	}
}

// openIndex opens an index file for the rest of the test.
func openIndex(t *testing.T, p string) *Index {
	t.Helper()
	ix, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// lieAboutSums rewrites the archive at p with the first digest of its
// sha256sums changed, everything else as it was.
func lieAboutSums(t *testing.T, p string) {
	t.Helper()
	in, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == packages.SumsFile {
			if body[0] == '0' { // another hex digit
				body[0] = '1'
			} else {
				body[0] = '0'
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

package index

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/packets-dev/packets/packages"
)

func TestSearch(t *testing.T) {
	r, rel := standardRepo(t)
	ix := openIndex(t, filepath.Join(r.dir, rel.Index.File))
	tests := []struct {
		term string
		want []string
	}{
		{"htop", []string{"htop#4"}},
		{"HTOP", []string{"htop#4"}},
		{"proc", []string{"procps#2", "htop#4"}}, // name prefix first, then "process" in a description
		{"curses", []string{"ncurses#1"}},
		{"library", []string{"ncurses#1"}},
		{"/proc (top", []string{"procps#2"}},
		{"%", []string{}}, // LIKE wildcards are literal
		{"_", []string{}}, //
		{"", []string{"htop#4", "ncurses#1", "procps#2"}},
		{"nothing-like-it", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.term, func(t *testing.T) {
			got, err := ix.Search(t.Context(), tt.term)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, names(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchFile(t *testing.T) {
	r, rel := standardRepo(t)
	ix := openIndex(t, filepath.Join(r.dir, rel.Index.File))
	tests := []struct {
		suffix string
		want   []string
	}{
		{"bin/htop", []string{"/opt/packets/htop/data/bin/htop", "/opt/packets/procps/data/data/bin/htop"}},
		{"/bin/htop", []string{"/opt/packets/htop/data/bin/htop", "/opt/packets/procps/data/data/bin/htop"}},
		{"htop", []string{"/opt/packets/htop/data/bin/htop", "/opt/packets/procps/data/data/bin/htop", "/opt/packets/procps/data/sbin/htop"}},
		{"sbin/htop", []string{"/opt/packets/procps/data/sbin/htop"}},
		{"in/htop", []string{}}, // not at a component boundary
		{"top", []string{"/opt/packets/procps/data/bin/top"}},
		{"data/bin/htop", []string{"/opt/packets/htop/data/bin/htop", "/opt/packets/procps/data/data/bin/htop"}},
		{"htop/data/bin/htop", []string{"/opt/packets/htop/data/bin/htop"}},
		{"procps/data/bin/htop", []string{}},
		{"packets/htop/data/bin/htop", []string{"/opt/packets/htop/data/bin/htop"}},
		{"/opt/packets/htop/data/bin/htop", []string{"/opt/packets/htop/data/bin/htop"}},
		{"/opt/packets/procps/data/data/bin/htop", []string{"/opt/packets/procps/data/data/bin/htop"}},
		{"/srv/htop/data/bin/htop", []string{}},
		{"share//man/man1/htop.1/", []string{"/opt/packets/htop/data/share/man/man1/htop.1"}},
		{"lib/libncursesw.so", []string{"/opt/packets/ncurses/data/lib/libncursesw.so"}}, // a symlink
		{"share/doc/htop", []string{}},                                                   // directories are not indexed
		{"x", []string{}},                                                                // only a directory of ncurses

	}
	for _, tt := range tests {
		t.Run(tt.suffix, func(t *testing.T) {
			got, err := ix.SearchFile(t.Context(), tt.suffix)
			if err != nil {
				t.Fatal(err)
			}
			paths := []string{}
			for _, m := range got {
				paths = append(paths, m.Path)
				if want := ix.InstalledPath(m.Package.Name, m.Rel); m.Path != want {
					t.Errorf("match %s: Path %s does not map Rel %s", m.Package.Name, m.Path, m.Rel)
				}
			}
			if diff := cmp.Diff(tt.want, paths); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "/", "bin/../htop", "./htop"} {
		if _, err := ix.SearchFile(t.Context(), bad); err == nil {
			t.Errorf("SearchFile(%q) succeeded", bad)
		}
	}
}

func TestSearchFileDataDir(t *testing.T) {
	r, rel := standardRepo(t)
	ix := openIndex(t, filepath.Join(r.dir, rel.Index.File))
	ix.SetDataDir("/srv/pk/")
	for suffix, want := range map[string][]string{
		"/srv/pk/htop/data/bin/htop":      {"/srv/pk/htop/data/bin/htop"},
		"/opt/packets/htop/data/bin/htop": {},
		"pk/htop/data/bin/htop":           {"/srv/pk/htop/data/bin/htop"},
	} {
		got, err := ix.SearchFile(t.Context(), suffix)
		if err != nil {
			t.Fatal(err)
		}
		paths := []string{}
		for _, m := range got {
			paths = append(paths, m.Path)
		}
		if diff := cmp.Diff(want, paths); diff != "" {
			t.Errorf("%s (-want +got):\n%s", suffix, diff)
		}
	}
	files, err := ix.Files(t.Context(), "htop", 4)
	if err != nil || len(files) == 0 || !strings.HasPrefix(files[0], "/srv/pk/htop/data/") {
		t.Errorf("Files: %v, %v; want paths under /srv/pk/htop/data", files, err)
	}
}

func TestLookup(t *testing.T) {
	r, _ := standardRepo(t)
	htop2 := specHtop
	htop2.version, htop2.serial = "3.4.0", 5
	r.add(t, htop2)
	rel := r.index(t)
	ix := openIndex(t, filepath.Join(r.dir, rel.Index.File))
	tests := []struct {
		name string
		want []string
	}{
		{"htop", []string{"htop#4", "htop#5"}},
		{"ncurses", []string{"ncurses#1"}},
		{"missing", []string{}},
	}
	for _, tt := range tests {
		got, err := ix.Lookup(t.Context(), packages.Name(tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, names(got)); diff != "" {
			t.Errorf("Lookup(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
	all, err := ix.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"htop#4", "htop#5", "ncurses#1", "procps#2"}, names(all)); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if _, err := ix.Files(t.Context(), "htop", 99); err == nil || !strings.Contains(err.Error(), "htop serial 99 is not in the index") {
		t.Errorf("Files of a missing serial: %v", err)
	}
	if got := ix.Release(); got.Version != 2 || got.Repo != DefaultRepoName || !got.Issued.Equal(t0) {
		t.Errorf("Release() = %+v", got)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "junk.db")
	mustWrite(t, notDB, strings.Repeat("not sqlite ", 500))
	if _, err := Open(notDB); !errors.Is(err, ErrBadIndex) {
		t.Errorf("not a database: err = %v; want ErrBadIndex", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("a missing file opened")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Error("opening a missing index created it")
	}

	// An index of another format is refused with advice.
	r, rel := standardRepo(t)
	p := filepath.Join(r.dir, rel.Index.File)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), `UPDATE meta SET value = '99' WHERE key = 'format'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); !errors.Is(err, ErrBadIndex) || !strings.Contains(err.Error(), "upgrade packets") {
		t.Errorf("format 99: err = %v; want ErrBadIndex advising an upgrade", err)
	}
}

func TestIndexConcurrentQueries(t *testing.T) {
	r, rel := standardRepo(t)
	ix := openIndex(t, filepath.Join(r.dir, rel.Index.File))
	var g errgroup.Group
	for range 8 {
		g.Go(func() error {
			for range 20 {
				m, err := ix.SearchFile(t.Context(), "bin/htop")
				if err != nil {
					return err
				}
				all, err := ix.All(t.Context())
				if err != nil {
					return err
				}
				if len(m) != 2 || len(all) != 3 {
					return fmt.Errorf("%d matches, %d packages", len(m), len(all))
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexValidatesRows checks that what a signed index says is still
// validated before it becomes a name or a URL path.
func TestIndexValidatesRows(t *testing.T) {
	good := packages.Available{
		Manifest: packages.Manifest{Name: "ok", Version: "1", Family: packages.Family(specHtop.familyID()), Serial: 1},
		Filename: "packages/ok.tar.zst",
	}
	tests := []struct {
		name   string
		mutate func(a *packages.Available)
		want   string
	}{
		{"escaping file name", func(a *packages.Available) { a.Filename = "../../etc/passwd" }, "not a plain relative path"},
		{"absolute file name", func(a *packages.Available) { a.Filename = "/etc/passwd" }, "not a plain relative path"},
		{"bad name", func(a *packages.Available) { a.Name = "../x" }, "package name"},
		{"bad version", func(a *packages.Available) { a.Version = "1 2" }, "version"},
		{"bad family", func(a *packages.Available) { a.Family = "x" }, "not a UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "index.db")
			w, err := createIndexDB(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			row := &pkgRow{Available: good}
			tt.mutate(&row.Available)
			if err := w.add(t.Context(), 1, row); err != nil {
				t.Fatal(err)
			}
			if err := w.finish(t.Context(), testRelease()); err != nil {
				t.Fatal(err)
			}
			ix := openIndex(t, p)
			if _, err := ix.All(t.Context()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want %q", err, tt.want)
			}
		})
	}
}

// decodeStrings reads what encoding/json would, through its fast path or
// not.
func TestDecodeStrings(t *testing.T) {
	for _, src := range []string{
		`[]`, `null`, `[""]`, `["a"]`, `["ncurses >= 6.0","libc"]`, `["a\"b"]`, `["é","\u00e9"]`,
		`["a" ,"b"]`, `[ "a"]`, `["a",]`, `["a"`, `"a"`, `[1]`, `["a","b"]x`, "[\"a\tb\"]", `["<>&"]`,
	} {
		var want []string
		wantErr := json.Unmarshal([]byte(src), &want)
		var got []string
		err := decodeStrings(src, &got)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, encoding/json's %v", src, err, wantErr)
			continue
		}
		if len(want) == 0 {
			want = nil
		}
		if len(got) == 0 {
			got = nil
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
			t.Errorf("%s: %q, encoding/json reads %q", src, got, want)
		}
	}
}

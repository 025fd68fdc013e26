package peer

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
)

// repoDir writes a repository's signed files (their content is not
// checked here: index.Sync does that) and returns the directory.
func repoDir(t *testing.T, version string) string {
	dir := t.TempDir()
	files := map[string]string{
		"release.toml":             "repo = \"\"\nversion = " + version + "\n[index]\nfile = \"index-" + version + ".db\"\nsize = 5\n",
		"release.toml.minisig":     "signature " + version,
		"index-" + version + ".db": "index " + version,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func get(t *testing.T, r *Repo, path string) (string, error) {
	t.Helper()
	rc, err := r.Get(t.Context(), path, 1<<20)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func TestRepo(t *testing.T) {
	// Two peers hold different releases; the files of one release must
	// all come from the same peer.
	s7 := serve(t, &Server{Cache: newCache(t), Repos: map[string]string{"": repoDir(t, "7")}})
	s8 := serve(t, &Server{Cache: newCache(t), Repos: map[string]string{"default": repoDir(t, "8")}})
	extra := serve(t, &Server{Cache: newCache(t), Repos: map[string]string{"extra": repoDir(t, "1")}})
	src := &Source{Config: Config{Window: 100 * time.Millisecond}, Conn: loopConn, Targets: unicast(s7.udp, s8.udp, extra.udp)}
	r := &Repo{Source: src}

	rel, err := get(t, r, "release.toml")
	if err != nil {
		t.Fatal(err)
	}
	version := map[string]string{"peer " + s7.http.String(): "7", "peer " + s8.http.String(): "8"}[r.String()]
	if version == "" {
		t.Fatalf("String() = %q: not one of the peers", r.String())
	}
	for _, tt := range []struct{ path, want string }{
		{"release.toml.minisig", "signature " + version},
		{"index-" + version + ".db", "index " + version},
		{"index-" + version + "0.db", ""}, // not the release's index: 404
		{"../index-" + version + ".db", ""},
	} {
		got, err := get(t, r, tt.path)
		switch {
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("Get(%s) = %q, %v; want %q", tt.path, got, err, tt.want)
		case tt.want == "" && err == nil:
			t.Errorf("Get(%s) = %q, want an error", tt.path, got)
		}
	}
	if !containsRepoFile(rel, version) {
		t.Errorf("release.toml %q is not release %s", rel, version)
	}

	// Another repository is discovered by its own key.
	if got, err := get(t, &Repo{Source: src, Name: "extra"}, "release.toml"); err != nil || !containsRepoFile(got, "1") {
		t.Errorf("extra release.toml = %q, %v", got, err)
	}
	if _, err := get(t, &Repo{Source: src, Name: "nobody"}, "release.toml"); !errors.Is(err, fetch.ErrNotFound) {
		t.Errorf("unserved repository: err = %v, want fetch.ErrNotFound", err)
	}
}

func containsRepoFile(rel, version string) bool {
	return rel == "repo = \"\"\nversion = "+version+"\n[index]\nfile = \"index-"+version+".db\"\nsize = 5\n"
}

// TestRepoKeyAnswered: a server answers a repository's key only while it
// has that repository's release.toml.
func TestRepoKeyAnswered(t *testing.T) {
	dir := repoDir(t, "3")
	s := serve(t, &Server{Cache: newCache(t), Repos: map[string]string{"": dir}})
	conn := listenUDP(t, "127.0.0.1:0")
	if got := exchange(t, conn, s.udp, Query(RepoKey(""))); string(got) != string(Answer(RepoKey(""), int(s.http.Port()))) {
		t.Errorf("answer %q", got)
	}
	os.Remove(filepath.Join(dir, "release.toml"))
	got, err := Discover(t.Context(), conn, []*net.UDPAddr{s.udp}, RepoKey(""), 50*time.Millisecond)
	if err != nil || len(got) != 0 {
		t.Errorf("without release.toml: %v, %v", got, err)
	}
}

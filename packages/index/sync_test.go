package index

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

func TestSync(t *testing.T) {
	r, rel1 := standardRepo(t)
	m := newMirror(t, r.dir)
	c := newClient(t, m, r.pub)

	c.mirror = m.srv.URL
	res := c.mustSync(t)
	if diff := cmp.Diff(SyncResult{Release: rel1, Changed: true, Previous: 0}, res); diff != "" {
		t.Errorf("first sync (-want +got):\n%s", diff)
	}
	c.check(t, 1)
	wantState := SyncState{Release: rel1, KeyID: r.pub.ID(), Synced: c.now, Mirror: m.srv.URL}
	if diff := cmp.Diff(wantState, mustReadState(t, c)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}

	// Unchanged: nothing downloaded again, and the mirror stays remembered
	// until another is given.
	c.mirror = ""
	res = c.mustSync(t)
	if res.Changed || res.Previous != 1 || m.hitCount(rel1.Index.File) != 1 {
		t.Errorf("second sync: %+v, %d index downloads; want unchanged, one download", res, m.hitCount(rel1.Index.File))
	}
	c.mirror = "https://mirror.example.org/packets"
	c.mustSync(t)
	if got := mustReadState(t, c).Mirror; got != c.mirror {
		t.Errorf("recorded mirror %q, want %q", got, c.mirror)
	}
	c.mirror = ""

	// A new release: the new package appears.
	r.add(t, pkgSpec{name: "tree", version: "2.1", serial: 1, files: map[string]string{"bin/tree": "t"}})
	r.now = t0.Add(2 * time.Hour)
	rel2 := r.index(t)
	res = c.mustSync(t)
	if diff := cmp.Diff(SyncResult{Release: rel2, Changed: true, Previous: 1}, res); diff != "" {
		t.Errorf("third sync (-want +got):\n%s", diff)
	}
	c.check(t, 2)
	if got := mustReadState(t, c).Mirror; got != "https://mirror.example.org/packets" {
		t.Errorf("after an update, recorded mirror %q; want the one given before", got)
	}
	ix, err := OpenSynced(c.stateDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	got, err := ix.Lookup(t.Context(), "tree")
	if err != nil || len(got) != 1 || got[0].Repo != "" {
		t.Errorf("tree: %v, %v; want one build from the default repository", names(got), err)
	}
}

func mustReadState(t *testing.T, c *client) SyncState {
	t.Helper()
	st, err := ReadSyncState(c.stateDir, c.repo)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSyncRejects(t *testing.T) {
	// Each case starts from release 1 synced (or release 2 where the case
	// says so), breaks something, and expects a refusal that leaves
	// release `keep` in place.
	type env struct {
		r    *repoFixture
		m    *mirror
		c    *client
		rel1 Release
	}
	next := func(t *testing.T, e *env) Release {
		e.r.add(t, pkgSpec{name: fmt.Sprintf("p%d", time.Now().UnixNano()%1e6), version: "1", serial: 1, files: map[string]string{"bin/p": "p"}})
		e.r.now = e.r.now.Add(time.Hour)
		return e.r.index(t)
	}
	publish := func(t *testing.T, e *env, rel Release, key minisign.PrivateKey) {
		data := rel.Encode()
		mustWrite(t, filepath.Join(e.r.dir, SignatureFile), string(SignRelease(key, data, rel)))
		mustWrite(t, filepath.Join(e.r.dir, ReleaseFile), string(data))
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		keep  int64
		kind  error
		msg   string
		as    func(err error) bool
		after func(t *testing.T, e *env) // more checks
	}{{
		name: "tampered index byte",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			b := e.r.readFile(t, rel.Index.File)
			b[len(b)/3] ^= 0x01
			e.m.fail(rel.Index.File, fault{body: b})
		},
		keep: 1, kind: ErrIndexMismatch, msg: "sha256 mismatch",
		as: func(err error) bool { _, ok := errors.AsType[*packages.DigestMismatchError](err); return ok },
	}, {
		name: "tampered release",
		setup: func(t *testing.T, e *env) {
			next(t, e)
			b := e.r.readFile(t, ReleaseFile)
			mustWrite(t, filepath.Join(e.r.dir, ReleaseFile), strings.Replace(string(b), "expires = 2025-", "expires = 2099-", 1))
		},
		keep: 1, kind: ErrBadSignature, msg: "does not match its signature",
	}, {
		name: "signature by an untrusted key",
		setup: func(t *testing.T, e *env) {
			_, e.r.key = genKey(t)
			next(t, e)
		},
		keep: 1, kind: ErrUnknownKey, msg: "add the repository's public key",
	}, {
		name: "replayed older release",
		setup: func(t *testing.T, e *env) {
			old, oldSig := e.r.readFile(t, ReleaseFile), e.r.readFile(t, SignatureFile)
			next(t, e)
			e.c.now = e.c.now.Add(2 * time.Hour)
			e.c.mustSync(t)
			e.m.fail(ReleaseFile, fault{body: old})
			e.m.fail(SignatureFile, fault{body: oldSig})
		},
		keep: 2, kind: ErrRollback, msg: "release 1 is older than release 2",
	}, {
		name: "expired release",
		setup: func(t *testing.T, e *env) {
			e.r.expires = 24 * time.Hour
			next(t, e)
			e.c.now = e.r.now.Add(25 * time.Hour)
		},
		keep: 1, kind: ErrExpired, msg: "use an up-to-date mirror",
	}, {
		name: "clock set back",
		setup: func(t *testing.T, e *env) {
			// Release 2 is accepted ten days in. Then a release issued at
			// day 1 that expired at day 2 arrives, and the clock reads
			// day 1: without the freeze rule it would pass.
			e.r.now = t0.Add(10 * 24 * time.Hour)
			e.r.index(t)
			e.c.now = e.r.now
			e.c.mustSync(t)
			e.r.now, e.r.expires = t0.Add(24*time.Hour), 24*time.Hour
			e.r.index(t)
			e.c.now = t0.Add(25 * time.Hour)
		},
		keep: 2, kind: ErrExpired, msg: "fix the system clock",
	}, {
		name: "truncated download",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			e.m.fail(rel.Index.File, fault{cut: int(rel.Index.Size / 2)})
		},
		keep: 1, kind: ErrIndexMismatch, msg: "cut short",
		as: func(err error) bool {
			s, ok := errors.AsType[*packages.SizeMismatchError](err)
			return ok && s.Got >= 0
		},
	}, {
		name: "short body",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			e.m.fail(rel.Index.File, fault{body: e.r.readFile(t, rel.Index.File)[:100]})
		},
		keep: 1, kind: ErrIndexMismatch, msg: "got 100",
		as: func(err error) bool {
			s, ok := errors.AsType[*packages.SizeMismatchError](err)
			return ok && s.Got == 100
		},
	}, {
		name: "body longer than promised",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			e.m.fail(rel.Index.File, fault{body: append(e.r.readFile(t, rel.Index.File), make([]byte, 1<<20)...), chunked: true})
		},
		keep: 1, kind: ErrIndexMismatch, msg: "larger than the",
		as: func(err error) bool {
			s, ok := errors.AsType[*packages.SizeMismatchError](err)
			return ok && s.Got == -1
		},
	}, {
		name: "index not found",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			e.m.fail(rel.Index.File, fault{status: http.StatusNotFound})
		},
		keep: 1, kind: ErrNotFound, msg: "the mirror is incomplete",
	}, {
		name: "release not found",
		setup: func(t *testing.T, e *env) {
			e.m.fail(ReleaseFile, fault{status: http.StatusNotFound})
		},
		keep: 1, kind: ErrNotFound, msg: "check that the URL is the repository's root",
	}, {
		name: "server error",
		setup: func(t *testing.T, e *env) {
			e.m.fail(ReleaseFile, fault{status: http.StatusInternalServerError})
		},
		keep: 1, kind: ErrMirror, msg: "500 Internal Server Error",
	}, {
		name: "unreachable mirror",
		setup: func(t *testing.T, e *env) {
			e.c.get = httpGetter{deadMirror}
		},
		keep: 1, kind: ErrMirror, msg: "check the mirror URL and the network",
	}, {
		name: "index larger than the cap",
		setup: func(t *testing.T, e *env) {
			next(t, e)
			e.c.maxIndex = 1000
		},
		keep: 1, kind: ErrTooLarge, msg: "more than the 1000 allowed",
		after: func(t *testing.T, e *env) {
			if n := e.m.hitCount("index-2.db"); n != 0 {
				t.Errorf("the oversized index was requested %d times", n)
			}
		},
	}, {
		name: "index not SQLite",
		setup: func(t *testing.T, e *env) {
			junk := bytes.Repeat([]byte("junk"), 1000)
			mustWrite(t, filepath.Join(e.r.dir, "index-2.db"), string(junk))
			rel := e.rel1
			rel.Version, rel.Index = 2, IndexRef{File: "index-2.db", Size: int64(len(junk)), SHA256: packages.SumBytes(junk)}
			publish(t, e, rel, e.r.key)
		},
		keep: 1, kind: ErrBadIndex, msg: "index-2.db: not a packets index",
	}, {
		name: "index of another release",
		setup: func(t *testing.T, e *env) {
			rel := e.rel1
			rel.Version = 2
			publish(t, e, rel, e.r.key)
		},
		keep: 1, kind: ErrBadIndex, msg: "belongs to release 1",
	}, {
		name: "another repository",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			rel.Repo = "other"
			publish(t, e, rel, e.r.key)
		},
		keep: 1, kind: ErrBadRelease, msg: `repository "other"`,
	}, {
		name: "same version, another index",
		setup: func(t *testing.T, e *env) {
			rel := next(t, e)
			rel.Version = 1
			publish(t, e, rel, e.r.key)
		},
		keep: 1, kind: ErrRollback, msg: "names another index",
	}, {
		name: "release too large",
		setup: func(t *testing.T, e *env) {
			e.m.fail(ReleaseFile, fault{body: bytes.Repeat([]byte("#"), MaxReleaseSize+1), chunked: true})
		},
		keep: 1, kind: ErrBadRelease, msg: "larger than the 65536 bytes allowed",
	}, {
		name: "signature missing",
		setup: func(t *testing.T, e *env) {
			next(t, e)
			e.m.fail(SignatureFile, fault{status: http.StatusNotFound})
		},
		keep: 1, kind: ErrNotFound, msg: "get release.toml.minisig",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, rel1 := standardRepo(t)
			m := newMirror(t, r.dir)
			e := &env{r: r, m: m, c: newClient(t, m, r.pub), rel1: rel1}
			e.c.mustSync(t)
			tt.setup(t, e)

			_, err := e.c.sync(t)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v; want %v", err, tt.kind)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %q: want one line containing %q", err, tt.msg)
			}
			if tt.as != nil && !tt.as(err) {
				t.Errorf("err %q does not carry the expected typed cause", err)
			}
			e.c.check(t, tt.keep)
			if tt.after != nil {
				tt.after(t, e)
			}
		})
	}
}

func TestSyncFailover(t *testing.T) {
	r, _ := standardRepo(t)
	good := newMirror(t, r.dir)
	broken := newMirror(t, r.dir)
	for _, p := range []string{ReleaseFile, SignatureFile, "index-1.db"} {
		broken.fail(p, fault{status: http.StatusServiceUnavailable})
	}
	c := newClient(t, good, r.pub)
	c.get = failover{httpGetter{deadMirror}, httpGetter{broken.srv.URL}, httpGetter{good.srv.URL}}
	c.mustSync(t)
	c.check(t, 1)
	if broken.hitCount(ReleaseFile) != 1 || good.hitCount("index-1.db") != 1 {
		t.Errorf("hits: broken %v, good %v", broken.hits, good.hits)
	}
}

func TestSyncNamedRepos(t *testing.T) {
	main, _ := standardRepo(t)
	extra := newRepo(t)
	extra.add(t, pkgSpec{name: "tree", version: "2.1", serial: 1, files: map[string]string{"bin/tree": "t"}})
	if _, err := BuildRepo(t.Context(), BuildOptions{Dir: extra.dir, Key: extra.key, Repo: "extra", Now: func() time.Time { return t0 }}); err != nil {
		t.Fatal(err)
	}
	mMain, mExtra := newMirror(t, main.dir), newMirror(t, extra.dir)
	state := t.TempDir()
	cMain := &client{stateDir: state, keys: []minisign.PublicKey{main.pub}, get: httpGetter{mMain.srv.URL}, now: t0.Add(time.Hour)}
	cExtra := &client{stateDir: state, repo: "extra", keys: []minisign.PublicKey{extra.pub}, get: httpGetter{mExtra.srv.URL}, now: t0.Add(time.Hour)}
	cMain.mustSync(t)
	cExtra.mustSync(t)
	cMain.check(t, 1)
	cExtra.check(t, 1)

	// Each repository is verified with its own keys only.
	cWrong := &client{stateDir: state, repo: "extra", keys: []minisign.PublicKey{main.pub}, get: httpGetter{mExtra.srv.URL}, now: t0.Add(time.Hour)}
	if _, err := cWrong.sync(t); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("extra with main's key: err = %v; want ErrUnknownKey", err)
	}
	for _, name := range []string{"index.db", "index.sync.toml", "index-extra.db", "index-extra.sync.toml"} {
		if _, err := os.Stat(filepath.Join(state, name)); err != nil {
			t.Error(err)
		}
	}
	ix, err := OpenSynced(state, "extra")
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	all, err := ix.All(t.Context())
	if err != nil || len(all) != 1 || all[0].Repo != "extra" || ix.Release().Repo != "extra" {
		t.Errorf("extra: %v, %v", all, err)
	}
}

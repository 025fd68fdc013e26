package e2e

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/packets-dev/packets/cmd/packets/cli"
)

var update = flag.Bool("update", false, "update scripts' golden files in place")

func TestMain(m *testing.M) {
	// Under -race every process sleeps a second at exit so late race reports
	// can print; the suite starts hundreds of packets processes, so their
	// sleep is cut to 10 ms unless the caller chose otherwise.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=10")
	}
	testscript.Main(m, map[string]func(){"packets": cli.MainExit})
}

func TestScripts(t *testing.T) {
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("EXAMPLES", examples)
			env.Setenv("ROOT", filepath.Join(env.WorkDir, "root"))
			env.Setenv("NO_COLOR", "1")
			env.Values[mirrorKeyType{}] = &mirrorSlot{}
			env.Values[ctxKey{}] = t.Context()
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"publish":       cmdPublish,
			"exitcode":      cmdExitcode,
			"await":         cmdAwait,
			"corrupt-cache": cmdCorruptCache,
			"mirror":        cmdMirror,
			"mirror-fail":   cmdMirrorFail,
			"mirror-count":  cmdMirrorCount,
			"installed":     cmdInstalled,
			"not-installed": cmdNotInstalled,
			"no-temps":      cmdNoTemps,
		},
	})
}

// mirror is a static file server over a directory, like any HTTP server a
// repository is published on, that counts requests and fails on demand.
type mirror struct {
	dir string
	mu  sync.Mutex
	// fails is how many of the next requests get failCode.
	fails, failCode int
	count           map[string]int // requests by path prefix "packages/", "release.toml", ...
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	p := strings.TrimPrefix(r.URL.Path, "/")
	key := p
	if i := strings.Index(p, "/"); i >= 0 {
		key = p[:i+1]
	}
	m.count[key]++
	fail := 0
	if m.fails > 0 {
		m.fails--
		fail = m.failCode
	}
	m.mu.Unlock()
	if fail != 0 {
		http.Error(w, "injected failure", fail)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r) // no directory listings
		return
	}
	http.ServeFile(w, r, filepath.Join(m.dir, filepath.FromSlash(p)))
}

// ctxKey finds the test's context among a script's values.
type ctxKey struct{}

func scriptContext(ts *testscript.TestScript) context.Context {
	return ts.Value(ctxKey{}).(context.Context)
}

// mirrorKey finds a script's mirrorSlot among its testscript values.
type mirrorKeyType struct{}

// mirrorSlot holds the mirror a script started, if any.
type mirrorSlot struct{ m *mirror }

// mirror DIR: serve DIR on 127.0.0.1 and set $MIRROR to its URL.
func cmdMirror(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mirror DIR")
	}
	m := &mirror{dir: ts.MkAbs(args[0]), count: map[string]int{}}
	srv := httptest.NewServer(m)
	ts.Defer(srv.Close)
	ts.Value(mirrorKeyType{}).(*mirrorSlot).m = m
	ts.Setenv("MIRROR", srv.URL)
}

func mirrorOf(ts *testscript.TestScript) *mirror {
	m := ts.Value(mirrorKeyType{}).(*mirrorSlot).m
	if m == nil {
		ts.Fatalf("no mirror: run 'mirror DIR' first")
	}
	return m
}

// mirror-fail N CODE: the next N requests to the mirror get HTTP status CODE.
func cmdMirrorFail(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mirror-fail N CODE")
	}
	n, err1 := strconv.Atoi(args[0])
	code, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil {
		ts.Fatalf("usage: mirror-fail N CODE")
	}
	m := mirrorOf(ts)
	m.mu.Lock()
	m.fails, m.failCode = n, code
	m.mu.Unlock()
}

// mirror-count PREFIX N: the mirror served exactly N requests under PREFIX
// ("packages/" or "release.toml"); the count then restarts from zero.
func cmdMirrorCount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mirror-count PREFIX N")
	}
	want, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("usage: mirror-count PREFIX N")
	}
	m := mirrorOf(ts)
	m.mu.Lock()
	got := m.count[args[0]]
	m.count[args[0]] = 0
	m.mu.Unlock()
	if (got == want) == neg {
		ts.Fatalf("mirror served %d requests under %s, want %s%d", got, args[0], map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

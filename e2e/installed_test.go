package e2e

import (
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
)

// installed NAME VERSION: installed.db under $ROOT records NAME at VERSION.
func cmdInstalled(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: installed NAME VERSION (use not-installed for the negation)")
	}
	p := lookup(ts, args[0])
	if p == nil {
		ts.Fatalf("%s is not installed", args[0])
	}
	if string(p.Version) != args[1] {
		ts.Fatalf("%s is installed at %s, want %s", args[0], p.Version, args[1])
	}
}

// not-installed NAME: installed.db under $ROOT does not record NAME.
func cmdNotInstalled(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: not-installed NAME")
	}
	if p := lookup(ts, args[0]); p != nil {
		ts.Fatalf("%s is installed at %s", args[0], p.Version)
	}
}

func lookup(ts *testscript.TestScript, name string) *installed.Package {
	db, err := installed.Open(scriptContext(ts), filepath.Join(ts.Getenv("ROOT"), "var/lib/packets/installed.db"), installed.Options{})
	ts.Check(err)
	defer db.Close()
	snap, err := db.Snapshot(scriptContext(ts))
	ts.Check(err)
	return snap.Packages[packages.Name(name)]
}

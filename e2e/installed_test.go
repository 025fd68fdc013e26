package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/packets-dev/packets/packages"
	"github.com/packets-dev/packets/packages/installed"
)

// installed NAME VERSION: installed.db under $ROOT records NAME at VERSION.
func cmdInstalled(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: installed NAME VERSION (use not-installed for the negation)")
	}
	ts.Check(isInstalled(ts, args[0], args[1]))
}

func isInstalled(ts *testscript.TestScript, name, version string) error {
	p, err := lookup(ts, name)
	switch {
	case err != nil:
		return err
	case p == nil:
		return fmt.Errorf("%s is not installed", name)
	case string(p.Version) != version:
		return fmt.Errorf("%s is installed at %s, want %s", name, p.Version, version)
	}
	return nil
}

func isNotInstalled(ts *testscript.TestScript, name string) error {
	p, err := lookup(ts, name)
	if err != nil {
		return err
	}
	if p != nil {
		return fmt.Errorf("%s is installed at %s", name, p.Version)
	}
	return nil
}

// not-installed NAME: installed.db under $ROOT does not record NAME.
func cmdNotInstalled(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: not-installed NAME")
	}
	ts.Check(isNotInstalled(ts, args[0]))
}

// lookup reads NAME's receipt from installed.db under $ROOT (nil when not
// installed). It reads, never creates: a missing database is "nothing".
func lookup(ts *testscript.TestScript, name string) (*installed.Package, error) {
	path := filepath.Join(ts.Getenv("ROOT"), "var/lib/packets/installed.db")
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	db, err := installed.Open(scriptContext(ts), path, installed.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	snap, err := db.Snapshot(scriptContext(ts))
	if err != nil {
		return nil, err
	}
	return snap.Packages[packages.Name(name)], nil
}

// corrupt-cache DIR: flip one byte in the middle of every cached archive,
// keeping its size, as a failing disk might.
func cmdCorruptCache(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: corrupt-cache DIR")
	}
	blobs, err := filepath.Glob(filepath.Join(ts.MkAbs(args[0]), "*.tar.zst"))
	ts.Check(err)
	if len(blobs) == 0 {
		ts.Fatalf("no archive in %s", args[0])
	}
	for _, b := range blobs {
		data, err := os.ReadFile(b)
		ts.Check(err)
		data[len(data)/2] ^= 0xff
		ts.Check(os.WriteFile(b, data, 0o644))
	}
}

// no-temps: nothing under $ROOT is a staged temporary (a name starting
// with packages.TempPrefix), file or directory.
func cmdNoTemps(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: no-temps")
	}
	root := ts.Getenv("ROOT")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), packages.TempPrefix) {
			return fmt.Errorf("temporary left: %s", strings.TrimPrefix(p, root))
		}
		return err
	})
	ts.Check(err)
}

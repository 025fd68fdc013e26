package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/packets-dev/packets/packages"
)

// Change is one package's part of a transaction.
type Change struct {
	Kind Kind
	// Old is the installed receipt (nil for Install). Begin re-reads it
	// from the database, which is the authority.
	Old *Package
	// New is the receipt to record (nil for Remove). Its Name may differ
	// from Old's: a rename within a family. Name, Version, Family and
	// Serial must match the archive's manifest; the engine fills the
	// description, dependencies, hooks, installed size and data dir from
	// the archive and the Layout.
	New *Package
	// Open returns the archive bytes of New, from the cache, verified
	// against the signed index: Stage takes the digests of the archive's
	// SumsFile as they are (packages.ExtractOptions.TrustSums). It may be
	// called more than once (Stage, then recovery).
	Open func() (io.ReadCloser, error)
	// Wait, when not nil, is called by Stage before Open: it blocks until
	// the archive is in the cache (the caller fetches it while other
	// packages stage) and returns where it came from, recorded as
	// New.Source. Its error fails the stage.
	Wait func(ctx context.Context) (source string, err error)
	// Ready, when not nil, reports without blocking whether Wait would
	// return at once: Stage extracts the archives that have arrived
	// before waiting for one that has not (the first of a cold apply is
	// often one of its largest downloads).
	Ready func() bool
	// Options are handed to the hooks; they are recorded as New.Options.
	Options map[string]string
}

// HookFunc runs one hook script of pkg ("install.lua" or "remove.lua",
// source src) and returns every absolute machine path it created.
type HookFunc func(ctx context.Context, pkg *Package, script string, src []byte) (created []string, err error)

// HookSend starts one hook script of pkg and returns at once; wait blocks
// until it has run and returns what a HookFunc returns. Hooks run in the
// order they were started. PostHooks starts each install hook before it
// waits for the one before it, so that a runner in another process (the
// sandbox child) finds the next hook waiting instead of idling while the
// engine reads a result.
type HookSend func(ctx context.Context, pkg *Package, script string, src []byte) (wait func() (created []string, err error))

// Deferred is run as a HookSend: each hook runs when it is waited for.
func (run HookFunc) Deferred() HookSend {
	return func(ctx context.Context, pkg *Package, script string, src []byte) func() ([]string, error) {
		return func() ([]string, error) {
			if run == nil {
				return nil, errors.New("no hook runner")
			}
			return run(ctx, pkg, script, src)
		}
	}
}

// Layout is where a transaction writes.
type Layout struct {
	Root    *os.Root // the machine's root (--root)
	DataDir string   // machine path of the packages' dirs, "/opt/packets"
	// BinDir is the machine path of packets_bin_dir ("/usr/bin"). A path
	// a hook reports creating is recorded only inside the package's own
	// dir or BinDir, where the sandbox lets hooks write: a runner that
	// reported /etc/shadow must not make its removal delete it.
	BinDir string
	// Limits bound each archive; nil means packages.DefaultLimits().
	Limits *packages.Limits
}

// pkgDir is name's own dir as a machine path.
func (l *Layout) pkgDir(name packages.Name) string {
	return path.Join("/", l.DataDir, string(name))
}

func (l *Layout) limits() packages.Limits {
	if l.Limits != nil {
		return *l.Limits
	}
	return packages.DefaultLimits()
}

// rel turns a machine path into a path relative to the root.
func rel(machine string) string {
	r := strings.TrimPrefix(path.Clean("/"+machine), "/")
	if r == "" {
		return "."
	}
	return r
}

// KeptConfig is a config file the user had modified, which a change left
// in place. NewPath is where the package's new version was saved instead
// ("<Path>.packets-new"); it is "" on Remove.
type KeptConfig struct {
	Package packages.Name
	Path    string
	NewPath string
}

// Tx is a transaction in progress. Call, in order: Stage, PreHooks,
// Commit, PostHooks, Done; or Abort before Commit.
type Tx struct {
	db      *DB
	l       Layout
	id      string
	changes []*change
	run     HookFunc // the hook runner PreHooks used, for Abort
	kept    []KeptConfig
	// rec, for a batch of installs, holds the rows Stage wrote while it
	// extracted, uncommitted: Commit commits them as the decision point.
	rec *recorder
}

// change is a Change with its journal row and, once staged, what the
// archive holds and where its temps are.
type change struct {
	Change
	row      *journalRow
	contents *packages.Contents
	staged   *packages.Staged
	finals   *finals // of New and contents: set by stage with them
}

// Kept returns the config files the transaction kept because the user had
// modified them, for the CLI to mention.
func (tx *Tx) Kept() []KeptConfig { return tx.kept }

// Begin validates changes and journals them as pending, in one SQL
// transaction. It refuses to start while an earlier transaction is
// unfinished: call Recover first.
func (db *DB) Begin(ctx context.Context, l Layout, changes []Change) (*Tx, error) {
	tx := &Tx{db: db, l: l, id: newID()}
	err := db.inTx(ctx, func(stx *sql.Tx) error {
		var n int
		if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errors.New("an earlier transaction is unfinished; recover it first")
		}
		installed, err := installedNames(ctx, stx)
		if err != nil {
			return err
		}
		ins, err := stx.PrepareContext(ctx, insertJournalSQL) // once, not once a change
		if err != nil {
			return err
		}
		defer ins.Close()
		seen := map[packages.Name]bool{}
		for i, ch := range changes {
			c, err := db.prepare(ctx, stx, &l, ch, installed, seen)
			if err != nil {
				return err
			}
			c.row = &journalRow{tx: tx.id, seq: i, kind: ch.Kind, pkg: string(c.name()), state: statePending,
				tag: newID(), p: payload{Old: c.Old, New: c.New}}
			c.row.p.Tags = []string{c.row.tag}
			if err := insertJournal(ctx, ins, c.row); err != nil {
				return err
			}
			tx.changes = append(tx.changes, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return tx, db.crash("pending")
}

// installedNames returns the names of the installed packages.
func installedNames(ctx context.Context, q querier) (map[packages.Name]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM packages`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[packages.Name]bool{}
	for rows.Next() {
		var n packages.Name
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		m[n] = true
	}
	return m, rows.Err()
}

// prepare checks one Change against the database (installed holds the
// names it records) and returns it with Old replaced by the recorded
// receipt and New completed from the Layout.
func (db *DB) prepare(ctx context.Context, q querier, l *Layout, ch Change, installed, seen map[packages.Name]bool) (*change, error) {
	wantOld, wantNew := ch.Kind != Install, ch.Kind != Remove
	if (ch.Old != nil) != wantOld || (ch.New != nil) != wantNew || ch.Kind < Install || ch.Kind > Remove {
		return nil, fmt.Errorf("%s: a change of kind %s needs old=%v new=%v", changeName(ch), ch.Kind, wantOld, wantNew)
	}
	c := &change{Change: ch}
	if ch.Old != nil {
		old, err := getPackage(ctx, q, ch.Old.Name)
		if err != nil {
			return nil, err
		}
		if old.Digest != ch.Old.Digest {
			return nil, fmt.Errorf("%s: installed build %s is not the one planned (%s); plan again", old.Ref(), old.Digest.Short(), ch.Old.Digest.Short())
		}
		c.Old = old
	}
	if ch.New != nil {
		if err := ch.New.Name.Validate(); err != nil {
			return nil, err
		}
		if ch.Open == nil {
			return nil, fmt.Errorf("%s: no archive to open", ch.New.Ref())
		}
		n := *ch.New
		n.DataDir = l.pkgDir(n.Name)
		if n.Options == nil {
			n.Options = ch.Options
		}
		if n.Reason == "" {
			n.Reason = ReasonExplicit
			if c.Old != nil {
				n.Reason = c.Old.Reason
			}
		}
		c.New = &n
		if c.Old != nil && c.Old.Family != n.Family {
			return nil, fmt.Errorf("%s: %s is of another family (%s, not %s)", c.Old.Ref(), n.Ref(), n.Family, c.Old.Family)
		}
		if n.Name != c.oldName() && installed[n.Name] {
			return nil, fmt.Errorf("%s %s: already installed", ch.Kind, n.Name)
		}
	}
	names := []packages.Name{c.oldName()}
	if c.newName() != c.oldName() {
		names = append(names, c.newName())
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: the package appears in two changes of one transaction", name)
		}
		seen[name] = true
	}
	return c, nil
}

func changeName(ch Change) packages.Name {
	if ch.New != nil {
		return ch.New.Name
	}
	if ch.Old != nil {
		return ch.Old.Name
	}
	return "?"
}

func (c *change) oldName() packages.Name {
	if c.Old == nil {
		return ""
	}
	return c.Old.Name
}

func (c *change) newName() packages.Name {
	if c.New == nil {
		return ""
	}
	return c.New.Name
}

// name is the package the change is about, for messages and the journal.
func (c *change) name() packages.Name {
	if c.New != nil {
		return c.New.Name
	}
	return c.Old.Name
}

package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"syscall"
	"time"

	"github.com/packets-dev/packets/packages"
)

// Commit passes the decision point and puts the batch in place:
//
//  1. decide, from the disk as it is now, which config files the user
//     modified and which old paths become stale;
//  2. record those decisions and state 'staged' for every change in one
//     SQL transaction: from here on, recovery rolls forward;
//  3. rename every temp into place;
//  4. delete the stale paths, children before parents;
//  5. flush the renames and deletions with one syncfs;
//  6. in one SQL transaction write the rows, bump the generation and mark
//     every change 'committed'.
//
// After an error from step 2 on, call Recover: Abort no longer applies.
func (tx *Tx) Commit(ctx context.Context) error {
	if err := tx.expect(statePending, stateUnhooked); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	replaces := false
	for _, c := range tx.changes {
		if c.New != nil && c.staged == nil {
			return fmt.Errorf("commit: %s is not staged", c.New.Ref())
		}
		replaces = replaces || c.Old != nil
	}
	// Every final path of the batch, which no stale deletion may touch:
	// only a change that replaces a build has stale paths.
	all := map[string]bool{}
	for _, c := range tx.changes {
		if c.New != nil && replaces {
			for p := range finals(c.New, c.contents) {
				all[p] = true
			}
		}
	}
	for _, c := range tx.changes {
		if err := tx.db.decide(ctx, &tx.l, c, all); err != nil {
			return fmt.Errorf("commit %s: %w", c.name(), err)
		}
	}
	if err := tx.db.setState(ctx, tx.changes, stateStaged); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := tx.db.crash("decided"); err != nil {
		return err
	}
	tx.kept = keptOf(tx.changes)
	if err := tx.db.finish(ctx, &tx.l, tx.changes); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// expect reports an error unless every change is in one of states: the
// Tx methods must be called in order.
func (tx *Tx) expect(states ...state) error {
	for _, c := range tx.changes {
		if !slices.Contains(states, c.row.state) {
			return fmt.Errorf("%s is %s, not %v", c.name(), c.row.state, states)
		}
	}
	return nil
}

// setState moves every change to s in one SQL transaction; the in-memory
// rows change only when it commits.
func (db *DB) setState(ctx context.Context, cs []*change, s state) error {
	err := db.inTx(ctx, func(stx *sql.Tx) error {
		for _, c := range cs {
			r := *c.row
			r.state = s
			if err := updateJournal(ctx, stx, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range cs {
		c.row.state = s
	}
	return nil
}

// finish runs steps 3 to 6 of Commit from the recorded decisions; a roll
// forward runs it again after re-extracting. Each package's renames,
// deletions and lstats touch only its own paths, so packages proceed side
// by side, and each hands its rows to the SQL transaction of step 6 as soon
// as they are known, which writes them meanwhile; the flush is one for the
// batch, and the SQL transaction commits only after it.
func (db *DB) finish(ctx context.Context, l *Layout, cs []*change) error {
	rec, err := db.beginRecord(ctx, l, cs)
	if err != nil {
		return err
	}
	defer rec.rollback() // unless committed
	described := make(chan []File, len(cs))
	recorded := make(chan error, 1)
	go func() { recorded <- rec.add(described) }()
	// The first change with files is published in two halves, so that a
	// test can stop the engine in the middle of the renames.
	half := slices.IndexFunc(cs, func(c *change) bool { return c.staged != nil && len(c.staged.Files) > 1 })
	err = forEach(ctx, len(cs), func(i int) error {
		c := cs[i]
		if err := db.publish(l, c, i == half); err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
		db.deleteStale(ctx, l, c, true)
		rows, err := db.newRows(ctx, l, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
		described <- rows
		return nil
	})
	close(described)
	if err := errors.Join(err, <-recorded); err != nil {
		return err
	}
	if err := packages.SyncFS(l.Root); err != nil {
		return err
	}
	if err := db.crash("synced"); err != nil {
		return err
	}
	if err := rec.commit(ctx); err != nil {
		return err
	}
	for _, c := range cs {
		c.row.state = stateCommitted
	}
	return db.crash("committed")
}

// publish renames c's temps into place with packages.Staged.Publish. A
// modified config file stays and the new version goes beside it; when the
// package dir moves, the user's file moves along to the new dir.
func (db *DB) publish(l *Layout, c *change, split bool) error {
	if c.staged == nil {
		return nil
	}
	aside := map[string]bool{}
	for _, k := range c.row.p.Keep {
		aside[rel(k.To)] = k.Beside
	}
	skip := func(f packages.StagedFile) (string, bool) {
		if aside[f.Final] {
			return f.Final + newConfigSuffix, true
		}
		return "", false
	}
	if c.staged.Top != "" { // staged whole: one rename, then the user's files
		if err := c.staged.Publish(l.Root, skip); err != nil {
			return err
		}
		if split {
			if err := db.crash("renames-half"); err != nil {
				return err
			}
		}
	} else {
		files, cut := c.staged.Files, 0
		if split {
			cut = len(files) / 2
			first := packages.Staged{Files: files[:cut], Dest: c.staged.Dest}
			if err := first.Publish(l.Root, skip); err != nil {
				return err
			}
			if err := db.crash("renames-half"); err != nil {
				return err
			}
		}
		rest := packages.Staged{Files: files[cut:], Dest: c.staged.Dest}
		if err := rest.Publish(l.Root, skip); err != nil {
			return err
		}
	}
	for _, k := range c.row.p.Keep {
		if k.From == k.To {
			continue
		}
		// Done already when a roll forward repeats this.
		if err := l.Root.Rename(rel(k.From), rel(k.To)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keep %s: %w", k.From, err)
		}
	}
	return nil
}

// deleteStale removes c's stale paths, children first; a directory only
// when empty. In Commit the paths are Old's rows, which no other package
// can own (a path has one owner); a roll forward past the commit (owned
// false) skips any path that has an owner again. A failure is logged, not
// returned: past the decision point an error would only make every later
// command fail the same way, and the leftover is harmless.
func (db *DB) deleteStale(ctx context.Context, l *Layout, c *change, owned bool) {
	dc := dirCache{root: l.Root}
	defer dc.close()
	for _, p := range c.row.p.Stale {
		if !owned {
			if _, ok, err := owner(ctx, db.sql, p); err != nil || ok {
				continue
			}
		}
		err := dc.remove(rel(p))
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
		default:
			db.log.Warn("cannot remove a stale path", "pkg", c.name(), "path", p, "err", err)
		}
	}
}

// recorder is step 6 of Commit: one SQL transaction that forgets the old
// rows of a batch, writes its receipts and new rows, bumps the generation
// and marks the changes committed. It is begun before the renames, takes
// the rows while they happen, and commits after the flush.
type recorder struct {
	db  *DB
	tx  *sql.Tx
	ins *fileInserter
}

func (db *DB) beginRecord(ctx context.Context, l *Layout, cs []*change) (*recorder, error) {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record: %w", db.asDamaged(err))
	}
	rec := &recorder{db: db, tx: stx}
	if err := rec.begin(ctx, l, cs); err != nil {
		rec.rollback()
		return nil, fmt.Errorf("record: %w", db.asDamaged(err))
	}
	return rec, nil
}

func (rec *recorder) begin(ctx context.Context, l *Layout, cs []*change) error {
	now := time.Now().UTC().Truncate(time.Second)
	// Forget every old row first: a batch may hand paths between packages
	// (a rename within a family).
	for _, c := range cs {
		if c.Old == nil {
			continue
		}
		if _, err := rec.tx.ExecContext(ctx, `DELETE FROM files WHERE package = ?`, c.Old.Name); err != nil {
			return err
		}
		if c.New == nil || c.New.Name != c.Old.Name {
			if _, err := rec.tx.ExecContext(ctx, `DELETE FROM packages WHERE name = ?`, c.Old.Name); err != nil {
				return err
			}
		}
	}
	for _, c := range cs {
		if c.New != nil {
			if c.New.InstalledAt.IsZero() {
				c.New.InstalledAt = now
			}
			if err := putPackage(rec.tx, c.New); err != nil {
				return err
			}
		}
		r := *c.row
		r.state = stateCommitted
		if err := updateJournal(ctx, rec.tx, &r); err != nil {
			return err
		}
	}
	if _, err := rec.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		MetaDataDir, path.Clean("/"+l.DataDir)); err != nil {
		return err
	}
	if err := bumpGeneration(rec.tx); err != nil {
		return err
	}
	var err error
	rec.ins, err = newFileInserter(rec.tx)
	return err
}

// add writes the rows it receives until the channel is closed. After an
// error it keeps receiving, so that no sender blocks, and returns it.
func (rec *recorder) add(rows <-chan []File) error {
	var err error
	for r := range rows {
		if err == nil {
			err = rec.ins.add(r)
		}
	}
	if err == nil {
		err = rec.ins.flush()
	}
	if err != nil {
		return fmt.Errorf("record: %w", rec.db.asDamaged(err))
	}
	return nil
}

func (rec *recorder) commit(ctx context.Context) error {
	rec.ins.close()
	if err := rec.tx.Commit(); err != nil {
		return fmt.Errorf("record: %w", rec.db.asDamaged(err))
	}
	return rec.db.checkpoint(ctx)
}

// rollback ends the transaction unless commit did.
func (rec *recorder) rollback() {
	if rec.ins != nil {
		rec.ins.close()
	}
	rec.tx.Rollback() // sql.ErrTxDone after a commit
}

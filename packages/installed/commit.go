package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"syscall"

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
		tx.dropRecord()
		return fmt.Errorf("commit: %w", err)
	}
	if err := tx.topsStillNew(); err != nil {
		tx.dropRecord()
		return fmt.Errorf("commit: %w", err)
	}
	if tx.rec != nil {
		return tx.commitRecorded(ctx)
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
			for p := range c.finals.index {
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

// topsStillNew refuses, while the transaction can still be aborted, a
// package dir staged whole (it did not exist) that someone made meanwhile:
// its rename would fail after the decision point, and the roll forward
// would then merge the package into whatever is there.
func (tx *Tx) topsStillNew() error {
	for _, c := range tx.changes {
		if c.staged == nil || c.staged.Top == "" {
			continue
		}
		if _, err := tx.l.Root.Lstat(c.staged.Top); err == nil {
			return &ConflictError{Package: c.New.Name, Path: "/" + c.staged.Top, Reason: "appeared while the package was being staged; move it away first"}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Decided reports whether the transaction passed its decision point: from
// then on only Recover may finish it, Abort no longer applies.
func (tx *Tx) Decided() bool {
	return slices.ContainsFunc(tx.changes, func(c *change) bool {
		return c.row.state == stateStaged || c.row.state == stateCommitted
	})
}

// commitRecorded is Commit for a batch of installs whose rows Stage
// recorded: the decisions (which config files each ships) and the state
// 'staged' join those rows, and their SQL transaction commits as the
// decision point; then the renames, one syncfs, and a small transaction
// marking the changes 'committed'. A roll forward from the decision point
// takes the usual way (finish), which writes the rows afresh.
func (tx *Tx) commitRecorded(ctx context.Context) error {
	rec := tx.rec
	tx.rec = nil
	defer rec.rollback() // unless committed
	for _, c := range tx.changes {
		if err := tx.db.decide(ctx, &tx.l, c, nil); err != nil {
			return fmt.Errorf("commit %s: %w", c.name(), err)
		}
	}
	if err := rec.decided(ctx, tx.changes); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := rec.commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, c := range tx.changes {
		c.row.state = stateStaged
	}
	if err := tx.db.checkpoint(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := tx.db.crash("decided"); err != nil {
		return err
	}
	if err := tx.db.publishAll(ctx, &tx.l, tx.changes, nil); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := packages.SyncFS(tx.l.Root); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := tx.db.crash("synced"); err != nil {
		return err
	}
	err := tx.db.inTx(ctx, func(stx *sql.Tx) error {
		if err := journalState(ctx, stx, tx.changes, stateCommitted); err != nil {
			return err
		}
		return markCommitted(ctx, stx, &tx.l)
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, c := range tx.changes {
		c.row.state = stateCommitted
	}
	return tx.db.crash("committed")
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
	err := db.inTx(ctx, func(stx *sql.Tx) error { return journalState(ctx, stx, cs, s) })
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
	rec, err := db.beginRecord(ctx)
	if err != nil {
		return err
	}
	defer rec.rollback() // unless committed
	if err := rec.forget(ctx, cs); err != nil {
		return err
	}
	items := make(chan recordItem, len(cs))
	recorded := make(chan error, 1)
	go func() { recorded <- rec.take(items) }()
	err = db.publishAll(ctx, l, cs, func(c *change) error {
		rows, err := db.newRows(ctx, l, c)
		if err == nil {
			items <- recordItem{pkg: c.New, rows: rows}
		}
		return err
	})
	close(items)
	if err := errors.Join(err, <-recorded); err != nil {
		return err
	}
	if err := packages.SyncFS(l.Root); err != nil {
		return err
	}
	if err := db.crash("synced"); err != nil {
		return err
	}
	if err := rec.committed(ctx, l, cs); err != nil {
		return err
	}
	if err := rec.commit(); err != nil {
		return err
	}
	for _, c := range cs {
		c.row.state = stateCommitted
	}
	if err := db.checkpoint(ctx); err != nil {
		return err
	}
	return db.crash("committed")
}

// publishAll renames every change's staged files into place and deletes
// its stale paths, packages side by side, then calls then (if not nil)
// for each. The first change with files is published in two halves, so
// that a test can stop the engine in the middle of the renames.
func (db *DB) publishAll(ctx context.Context, l *Layout, cs []*change, then func(*change) error) error {
	half := slices.IndexFunc(cs, func(c *change) bool { return c.staged != nil && len(c.staged.Files) > 1 })
	return forEach(ctx, len(cs), func(i int) error {
		c := cs[i]
		if err := db.publish(l, c, i == half); err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
		db.deleteStale(ctx, l, c, true)
		if then == nil {
			return nil
		}
		if err := then(c); err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
		return nil
	})
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

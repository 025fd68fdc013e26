package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/packets-dev/packets/packages"
)

// RecoverReport says what Recover did.
type RecoverReport struct {
	RolledBack    []packages.Ref // changes undone: the old build (or nothing) is in place
	RolledForward []packages.Ref // changes completed: the new build (or nothing) is in place
	Kept          []KeptConfig   // modified config files the completed changes kept
	// HookErrors are hooks that failed while recovering. They do not make
	// Recover fail: the files and the database agree either way, and a
	// hook that keeps failing must not block every later command.
	HookErrors error
}

// Recover finishes or undoes the transaction a crash interrupted, so that
// every package is wholly old or wholly new, the database matches the
// disk and no temp is left (DESIGN §8). Every writing command calls it
// first, under the lock. Before the decision point a change rolls back;
// from it on, it rolls forward, re-extracting the archive that open
// returns for a digest (from the cache). run runs hooks: the old
// install.lua of a rolled-back change whose remove.lua ran, the new
// install.lua of a completed one. It also deletes what an interrupted
// Backup or Restore left beside the database.
func (db *DB) Recover(ctx context.Context, l Layout, open func(packages.Digest) (io.ReadCloser, error), run HookFunc) (RecoverReport, error) {
	var rep RecoverReport
	if err := sweepDBTemps(db.path); err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	rows, err := loadJournal(ctx, db.sql)
	if err != nil || len(rows) == 0 {
		return rep, err
	}
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].tx == rows[0].tx {
			n++
		}
		if err := db.recoverTx(ctx, &l, rows[:n], open, run, &rep); err != nil {
			return rep, fmt.Errorf("recover: %w", err)
		}
		rows = rows[n:]
	}
	return rep, nil
}

// recoverTx recovers the rows of one transaction. They pass the decision
// point together (one SQL transaction), so they all roll the same way.
func (db *DB) recoverTx(ctx context.Context, l *Layout, rows []*journalRow, open func(packages.Digest) (io.ReadCloser, error), run HookFunc, rep *RecoverReport) error {
	cs := make([]*change, len(rows))
	forward := false
	for i, r := range rows {
		c := &change{Change: Change{Kind: r.kind, Old: r.p.Old, New: r.p.New}, row: r}
		if c.New != nil {
			digest := c.New.Digest
			c.Open = func() (io.ReadCloser, error) { return open(digest) }
		}
		cs[i] = c
		forward = forward || r.state == stateStaged || r.state == stateCommitted
	}
	txID := rows[0].tx
	if err := sweepHookTemps(l, cs); err != nil {
		return err
	}
	if !forward {
		hookErr, err := db.rollback(ctx, l, txID, cs, run)
		if err != nil {
			return err
		}
		for _, c := range cs {
			rep.RolledBack = append(rep.RolledBack, refOf(c))
		}
		rep.HookErrors = errors.Join(rep.HookErrors, hookErr)
		db.log.Info("rolled back an interrupted transaction", "tx", txID, "changes", len(cs))
		return nil
	}
	var staged []*change
	for _, c := range cs {
		if c.row.state == stateStaged {
			staged = append(staged, c)
		}
	}
	if len(staged) > 0 {
		if err := db.restage(ctx, l, staged); err != nil {
			return err
		}
		if err := db.finish(ctx, l, staged); err != nil {
			return err
		}
	}
	for _, c := range cs {
		// Deletions before the commit may have failed; nobody owns
		// these paths any more.
		db.deleteStale(ctx, l, c, false)
		rep.RolledForward = append(rep.RolledForward, refOf(c))
	}
	rep.Kept = append(rep.Kept, keptOf(cs)...)
	hookErr, err := db.postHooks(ctx, l, cs, run.Deferred())
	if err != nil {
		return err
	}
	rep.HookErrors = errors.Join(rep.HookErrors, hookErr)
	db.log.Info("completed an interrupted transaction", "tx", txID, "changes", len(cs))
	return db.inTx(ctx, func(stx *sql.Tx) error { return deleteJournal(ctx, stx, txID) })
}

// sweepHookTemps deletes what hooks killed half-way through a file
// function left (packages.HookTempPrefix) in the dirs the hooks of cs may
// write to: their packages' dirs and the bin dir.
func sweepHookTemps(l *Layout, cs []*change) error {
	dirs := []string{}
	if l.BinDir != "" {
		dirs = append(dirs, l.BinDir)
	}
	for _, c := range cs {
		for _, p := range []*Package{c.Old, c.New} {
			if p != nil {
				dirs = append(dirs, p.DataDir)
			}
		}
	}
	hook := strings.TrimSuffix(strings.TrimPrefix(packages.HookTempPrefix, packages.TempPrefix), "-")
	for _, d := range dirs {
		if err := sweepTemps(l.Root, d, []string{hook}); err != nil {
			return fmt.Errorf("sweep hook temporaries in %s: %w", d, err)
		}
	}
	return nil
}

// restage sweeps the temps of the earlier attempt and extracts every new
// build again under a fresh tag, which is journaled before any temp of it
// exists; then one syncfs.
func (db *DB) restage(ctx context.Context, l *Layout, cs []*change) error {
	for _, c := range cs {
		if c.New == nil {
			continue
		}
		if err := sweepStaged(l.Root, c.New.DataDir, c.row.p.Tags); err != nil {
			return err
		}
		c.row.tag = newID()
		c.row.p.Tags = append(c.row.p.Tags, c.row.tag)
	}
	if err := db.setState(ctx, cs, stateStaged); err != nil {
		return err
	}
	if err := db.stageAll(ctx, l, cs, false, nil); err != nil {
		return fmt.Errorf("re-extract: %w", err)
	}
	return db.crash("staged")
}

func refOf(c *change) packages.Ref {
	if c.New != nil {
		return c.New.Ref()
	}
	return c.Old.Ref()
}

package installed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/packets-dev/packets/packages"
)

// HookError is a hook that failed, or whose created paths could not all be
// recorded. Its message starts with the build's ref ("htop@3.3.0
// install.lua: ...").
type HookError struct {
	Ref    packages.Ref
	Script string // "install.lua" or "remove.lua"
	Err    error
}

func (e *HookError) Error() string { return fmt.Sprintf("%s %s: %v", e.Ref, e.Script, e.Err) }

func (e *HookError) Unwrap() error { return e.Err }

// PreHooks runs the old build's remove.lua of every Remove and Upgrade, in
// order. Each change is journaled 'unhooked' before its hook runs, so that
// a crash inside the hook still re-runs the old install.lua on rollback
// (hooks must be idempotent). On an error, call Abort.
func (tx *Tx) PreHooks(ctx context.Context, run HookFunc) (err error) {
	defer func() {
		if err != nil {
			tx.dropRecord()
		}
	}()
	if err := tx.expect(statePending); err != nil {
		return fmt.Errorf("pre hooks: %w", err)
	}
	tx.run = run
	var hooked []*change
	for _, c := range tx.changes {
		if (c.Kind == Remove || c.Kind == Upgrade) && c.Old.RemoveHook != "" {
			hooked = append(hooked, c)
		}
	}
	if len(hooked) > 0 {
		if err := tx.db.setState(ctx, hooked, stateUnhooked); err != nil {
			return fmt.Errorf("pre hooks: %w", err)
		}
	}
	for _, c := range hooked {
		hookErr, err := tx.db.runHook(ctx, &tx.l, run, c.Old, packages.RemoveHook)
		if err := errors.Join(err, hookErr); err != nil {
			return err
		}
	}
	return tx.db.crash("prehooks")
}

// PostHooks runs the new build's install.lua of every Install, Upgrade and
// Reinstall, in order, and records every path each one created as owned
// by its package. A failing hook does not stop the others (the files are
// in place either way); the *HookErrors are joined. A created path another
// package owns is refused (*OwnedError) and not recorded. Call Done after
// it even when it returns hook errors (otherwise the next Recover runs the
// hooks again). Each hook is started through send before the result of the
// one before it is read.
func (tx *Tx) PostHooks(ctx context.Context, send HookSend) error {
	if err := tx.expect(stateCommitted); err != nil {
		return fmt.Errorf("post hooks: %w", err)
	}
	hookErr, err := tx.db.postHooks(ctx, &tx.l, tx.changes, send)
	return errors.Join(err, hookErr)
}

// postHooks returns the hooks' errors apart from err, which stops the
// engine. Each hook is started before the result of the one before it is
// read; while the sandbox runs one hook, the paths the previous one
// created are described (lstat, hash, owner) and written on another
// goroutine, in hook order, in one SQL transaction that commits after the
// last hook: until then a crash leaves the transaction committed, and
// recovery runs every install hook again.
func (db *DB) postHooks(ctx context.Context, l *Layout, cs []*change, send HookSend) (hookErr, err error) {
	var (
		errs     []error
		rows     = &hookRowWriter{db: db, ctx: ctx}
		owners   []*Package // whose rows it holds
		ran      = make(chan ranScript, len(cs))
		describe sync.WaitGroup
	)
	describe.Go(func() {
		claimed := map[string]packages.Name{}
		dc := dirCache{root: l.Root} // the bin dir stays open from one hook to the next
		defer dc.close()
		for r := range ran {
			described, hookErr := db.describe(ctx, l, &dc, r, claimed)
			errs = append(errs, hookErr)
			if len(described) > 0 {
				rows.put(described)
				owners = append(owners, r.pkg)
			}
		}
	})
	var (
		stop    error
		started *Package // the hook started and not yet read
		wait    func() ([]string, error)
	)
	read := func() error {
		r := ranScript{pkg: started, script: packages.InstallHook}
		r.created, r.err = wait()
		if err := db.crash("ran " + packages.InstallHook); err != nil {
			return err
		}
		ran <- r
		return nil
	}
	for _, c := range cs {
		if c.New == nil || c.New.InstallHook == "" {
			continue
		}
		next := send(ctx, c.New, packages.InstallHook, []byte(c.New.InstallHook))
		if started != nil {
			if stop = read(); stop != nil {
				break
			}
		}
		started, wait = c.New, next
	}
	if stop == nil && started != nil {
		stop = read()
	}
	close(ran)
	describe.Wait()
	if stop != nil {
		rows.abort()
		return errors.Join(errs...), stop
	}
	if err := rows.commit(); err != nil {
		for _, pkg := range owners {
			errs = append(errs, &HookError{Ref: pkg.Ref(), Script: packages.InstallHook, Err: err})
		}
	}
	return errors.Join(errs...), db.crash("posthooks")
}

// runHook runs one script of pkg and records, in one SQL transaction, the
// paths it created, also when it failed halfway: they exist and removal
// must find them. Everything that goes wrong with the hook is hookErr; err
// is only the test hook stopping the engine.
func (db *DB) runHook(ctx context.Context, l *Layout, run HookFunc, pkg *Package, script string) (hookErr, err error) {
	r, err := db.execScript(ctx, run, pkg, script)
	if err != nil {
		return nil, err
	}
	dc := dirCache{root: l.Root}
	defer dc.close()
	rows, hookErr := db.describe(ctx, l, &dc, r, nil)
	if perr := db.putHookRows(ctx, rows); perr != nil {
		hookErr = errors.Join(hookErr, &HookError{Ref: pkg.Ref(), Script: script, Err: perr})
	}
	return hookErr, nil
}

// ranScript is a script that ran: the paths it reported creating and its
// own failure.
type ranScript struct {
	pkg     *Package
	script  string
	created []string
	err     error
}

// execScript runs one script of pkg; err is only the test hook stopping
// the engine.
func (db *DB) execScript(ctx context.Context, run HookFunc, pkg *Package, script string) (ranScript, error) {
	r := ranScript{pkg: pkg, script: script}
	if run == nil {
		r.err = errors.New("no hook runner")
		return r, nil
	}
	src := pkg.InstallHook
	if script == packages.RemoveHook {
		src = pkg.RemoveHook
	}
	r.created, r.err = run(ctx, pkg, script, []byte(src))
	return r, db.crash("ran " + script)
}

// describe returns the rows of the paths r created (looked up through
// dc), also when it failed halfway, without recording them, and r's
// *HookError if anything went wrong. claimed, when not nil, holds the paths described by earlier
// scripts of a batch; it gains this one's.
func (db *DB) describe(ctx context.Context, l *Layout, dc *dirCache, r ranScript, claimed map[string]packages.Name) ([]File, error) {
	rows, rowsErr := db.hookRows(ctx, l, dc, r.pkg, r.created, claimed)
	if err := errors.Join(r.err, rowsErr); err != nil {
		return rows, &HookError{Ref: r.pkg.Ref(), Script: r.script, Err: err}
	}
	return rows, nil
}

// hookRowWriter writes the rows of the paths a batch of hooks made while
// the hooks run, in one SQL transaction (begun with the first rows) that
// commit ends after the last hook: the commit and its checkpoint are all
// that is left for after it.
type hookRowWriter struct {
	db  *DB
	ctx context.Context
	tx  *sql.Tx
	up  *fileUpserter
	err error // the first failure: commit rolls back and returns it
}

func (w *hookRowWriter) put(rows []File) {
	if w.err != nil || len(rows) == 0 {
		return
	}
	if w.tx == nil {
		if w.tx, w.err = w.db.sql.BeginTx(w.ctx, nil); w.err != nil {
			w.tx = nil
			return
		}
		if w.up, w.err = newFileUpserter(w.tx); w.err != nil {
			return
		}
	}
	w.err = w.up.put(rows)
}

// commit records the rows put wrote, or, after a failure, rolls them back
// and returns it.
func (w *hookRowWriter) commit() error {
	if w.tx == nil {
		return w.db.asDamaged(w.err) // nil, or a failed begin
	}
	if w.err == nil {
		w.err = bumpGeneration(w.tx)
	}
	if w.up != nil {
		w.up.close()
	}
	if w.err != nil {
		w.tx.Rollback()
		return w.db.asDamaged(w.err)
	}
	if err := w.tx.Commit(); err != nil {
		return w.db.asDamaged(err)
	}
	return w.db.checkpoint(w.ctx)
}

// abort rolls back what put wrote.
func (w *hookRowWriter) abort() {
	if w.up != nil {
		w.up.close()
	}
	if w.tx != nil {
		w.tx.Rollback()
	}
}

// putHookRows records the rows of hook-made paths, if any.
func (db *DB) putHookRows(ctx context.Context, rows []File) error {
	w := &hookRowWriter{db: db, ctx: ctx}
	w.put(rows)
	return w.commit()
}

// Done ends the transaction: its journal rows are deleted.
func (tx *Tx) Done(ctx context.Context) error {
	if err := tx.expect(stateCommitted); err != nil {
		return fmt.Errorf("done: %w", err)
	}
	if err := tx.db.inTx(ctx, func(stx *sql.Tx) error { return deleteJournal(ctx, stx, tx.id) }); err != nil {
		return fmt.Errorf("done: %w", err)
	}
	return nil
}

// Abort undoes a transaction that has not passed the decision point: it
// deletes the temps and the directories the extraction created, re-runs
// the old install.lua of every change whose remove.lua ran (with the
// runner given to PreHooks), and clears the journal.
func (tx *Tx) Abort(ctx context.Context) error {
	tx.dropRecord()
	if err := tx.expect(statePending, stateUnhooked); err != nil {
		return fmt.Errorf("abort: past the decision point, recover instead: %w", err)
	}
	hookErr, err := tx.db.rollback(ctx, &tx.l, tx.id, tx.changes, tx.run)
	if err := errors.Join(err, hookErr); err != nil {
		return fmt.Errorf("abort: %w", err)
	}
	return nil
}

// rollback returns every change of a transaction that had not reached the
// decision point to its old state and clears the journal. Hook errors do
// not stop it (the files are old again either way); they are hookErr.
func (db *DB) rollback(ctx context.Context, l *Layout, txID string, cs []*change, run HookFunc) (hookErr, err error) {
	for _, c := range cs {
		if c.New == nil {
			continue
		}
		if err := sweepStaged(l.Root, c.New.DataDir, c.row.p.Tags); err != nil {
			return nil, err
		}
		if err := db.pruneDirs(ctx, l.Root, c.New.DataDir); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, c := range cs {
		if c.row.state == stateUnhooked && c.Old.InstallHook != "" {
			hookErr, err := db.runHook(ctx, l, run, c.Old, packages.InstallHook)
			if err != nil {
				return nil, err
			}
			errs = append(errs, hookErr)
		}
	}
	err = db.inTx(ctx, func(stx *sql.Tx) error { return deleteJournal(ctx, stx, txID) })
	return errors.Join(errs...), err
}

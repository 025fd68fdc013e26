package installed

import (
	"context"
	"database/sql"
	"fmt"
	"path"
	"time"
)

// recorder is the SQL transaction that records a batch's rows: it forgets
// the old rows, writes the receipts and new rows as they arrive from the
// goroutines that produce them, and is committed once the files it
// describes are where it says. Commit runs one beside the renames (commit
// after the flush); a batch of installs runs one beside the extraction,
// committed as the decision point (see Tx.Stage).
type recorder struct {
	db  *DB
	tx  *sql.Tx
	ins *fileInserter
	now time.Time // installed_at of a receipt without one
}

// recordItem is what a recorder writes for one change: the receipt (nil
// for a removal) and then its rows.
type recordItem struct {
	pkg  *Package
	rows []File
}

// beginRecord begins the recorder's transaction. It is not tied to ctx:
// database/sql rolls a transaction back when its context ends, and one
// that becomes the decision point must not vanish under a SIGINT that
// arrives on the way there; rollback ends it on every other path.
func (db *DB) beginRecord(ctx context.Context) (*recorder, error) {
	stx, err := db.sql.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("record: %w", db.asDamaged(err))
	}
	rec := &recorder{db: db, tx: stx, now: time.Now().UTC().Truncate(time.Second)}
	if rec.ins, err = newFileInserter(stx); err != nil {
		rec.rollback()
		return nil, fmt.Errorf("record: %w", db.asDamaged(err))
	}
	return rec, nil
}

// forget deletes the rows of the builds cs replace and of any earlier
// recording of the new ones (a roll forward after the decision of a batch
// recorded while it was extracted), and the receipts of old names: a batch
// may hand paths between packages (a rename within a family).
func (rec *recorder) forget(ctx context.Context, cs []*change) error {
	for _, c := range cs {
		for _, p := range []*Package{c.Old, c.New} {
			if p == nil {
				continue
			}
			if _, err := rec.tx.ExecContext(ctx, `DELETE FROM files WHERE package = ?`, p.Name); err != nil {
				return rec.fail(err)
			}
		}
		if c.Old != nil && (c.New == nil || c.New.Name != c.Old.Name) {
			if _, err := rec.tx.ExecContext(ctx, `DELETE FROM packages WHERE name = ?`, c.Old.Name); err != nil {
				return rec.fail(err)
			}
		}
	}
	return nil
}

// take writes what it receives until the channel is closed: each receipt,
// then its rows. After an error it keeps receiving, so that no sender
// blocks, and returns it.
func (rec *recorder) take(items <-chan recordItem) error {
	var err error
	for it := range items {
		if err != nil {
			continue
		}
		if it.pkg != nil {
			if it.pkg.InstalledAt.IsZero() {
				it.pkg.InstalledAt = rec.now
			}
			err = putPackage(rec.tx, it.pkg)
		}
		if err == nil {
			err = rec.ins.add(it.rows)
		}
	}
	if err == nil {
		err = rec.ins.flush()
	}
	return rec.fail(err)
}

// decided journals every change 'staged' with its decisions: committed,
// this transaction is the decision point.
func (rec *recorder) decided(ctx context.Context, cs []*change) error {
	return rec.fail(journalState(ctx, rec.tx, cs, stateStaged))
}

// committed journals every change 'committed', records the data dir of
// the first commit and bumps the generation.
func (rec *recorder) committed(ctx context.Context, l *Layout, cs []*change) error {
	if err := journalState(ctx, rec.tx, cs, stateCommitted); err != nil {
		return rec.fail(err)
	}
	return rec.fail(markCommitted(ctx, rec.tx, l))
}

// journalState writes every change's journal row in state s, in tx; the
// in-memory rows change only once tx commits.
func journalState(ctx context.Context, tx *sql.Tx, cs []*change, s state) error {
	stmt, err := tx.PrepareContext(ctx, updateJournalSQL) // once, not once a change
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range cs {
		r := *c.row
		r.state = s
		if err := updateJournal(ctx, stmt, &r); err != nil {
			return err
		}
	}
	return nil
}

// markCommitted records the data dir of the first commit and bumps the
// generation, in tx.
func markCommitted(ctx context.Context, tx *sql.Tx, l *Layout) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		MetaDataDir, path.Clean("/"+l.DataDir)); err != nil {
		return err
	}
	return bumpGeneration(tx)
}

func (rec *recorder) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("record: %w", rec.db.asDamaged(err))
}

// commit commits the transaction; the caller then records in memory what
// it committed, and checkpoints (DB.checkpoint).
func (rec *recorder) commit() error {
	rec.ins.close()
	return rec.fail(rec.tx.Commit())
}

// rollback ends the transaction unless commit did; it may be repeated.
func (rec *recorder) rollback() {
	rec.ins.close()
	rec.tx.Rollback() // sql.ErrTxDone after a commit
}

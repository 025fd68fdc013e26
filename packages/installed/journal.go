package installed

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Kind is what a Change does to one package.
type Kind uint8

// The kinds of change.
const (
	Install   Kind = iota + 1 // a package that is not installed
	Upgrade                   // another build of an installed package's family: newer, older, or renamed
	Reinstall                 // the same build again (upgrade --force), or the same package under another data dir
	Remove                    // an installed package
)

func (k Kind) String() string {
	switch k {
	case Install:
		return "install"
	case Upgrade:
		return "upgrade"
	case Reinstall:
		return "reinstall"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler (the journal's payload).
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	for c := Install; c <= Remove; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("unknown change kind %q", b)
}

// state is a journal row's progress (DESIGN §8). The decision point is
// stateStaged: before it a change rolls back, from it on it rolls forward.
type state string

const (
	statePending   state = "pending"   // begun; temps may exist
	stateUnhooked  state = "unhooked"  // the old remove hook may have run
	stateStaged    state = "staged"    // temps durable, decisions recorded: roll forward
	stateCommitted state = "committed" // files in place, rows written; post hooks remain
)

// payload is the journal row's JSON: everything recovery needs, since the
// database is the only memory that survives a crash.
type payload struct {
	Old *Package `json:",omitempty"`
	New *Package `json:",omitempty"`

	// Tags lists every temp tag this change has used, the current one
	// last; recovery sweeps ".pk-<tag>-*" for each.
	Tags []string

	// Set at the decision point, from the archive and the disk as they
	// were then, and never recomputed: a roll forward must repeat the very
	// same decisions even though the disk has half changed.
	Config []string     `json:",omitempty"` // New's config files, machine paths
	Keep   []keptConfig `json:",omitempty"` // user-modified config files to keep
	Stale  []string     `json:",omitempty"` // Old's paths to delete, children first
}

// keptConfig is a config file the user modified: the file at From stays
// (moved to To when the package dir moves), and when Beside the new
// build's version is published as To + ".packets-new". On Remove, or when
// the new build dropped the file, From == To and Beside is false.
type keptConfig struct {
	From, To string
	Beside   bool `json:",omitempty"`
}

// journalRow is one row of the journal table.
type journalRow struct {
	id    int64
	tx    string
	seq   int
	kind  Kind
	pkg   string
	state state
	tag   string
	p     payload
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// insertJournal adds r with stmt, prepared from insertJournalSQL, and
// sets its id.
func insertJournal(ctx context.Context, stmt *sql.Stmt, r *journalRow) error {
	p, err := json.Marshal(&r.p)
	if err != nil {
		return err
	}
	res, err := stmt.ExecContext(ctx, r.tx, r.seq, r.kind.String(), r.pkg, r.state, r.tag, string(p), time.Now().Unix())
	if err != nil {
		return fmt.Errorf("journal %s %s: %w", r.kind, r.pkg, err)
	}
	r.id, err = res.LastInsertId()
	return err
}

// updateJournal writes r's state, tag and payload with stmt, prepared
// from updateJournalSQL.
func updateJournal(ctx context.Context, stmt *sql.Stmt, r *journalRow) error {
	p, err := json.Marshal(&r.p)
	if err != nil {
		return err
	}
	if _, err = stmt.ExecContext(ctx, r.state, r.tag, string(p), time.Now().Unix(), r.id); err != nil {
		return fmt.Errorf("journal %s %s: %w", r.kind, r.pkg, err)
	}
	return nil
}

const insertJournalSQL = `INSERT INTO journal (tx, seq, kind, package, state, tag, payload, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

const updateJournalSQL = `UPDATE journal SET state = ?, tag = ?, payload = ?, updated_at = ? WHERE id = ?`

// loadJournal returns every row, oldest transaction first, in order.
func loadJournal(ctx context.Context, q querier) ([]*journalRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, tx, seq, kind, package, state, tag, payload FROM journal ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	defer rows.Close()
	var out []*journalRow
	for rows.Next() {
		var (
			r       journalRow
			kind, p string
		)
		if err := rows.Scan(&r.id, &r.tx, &r.seq, &kind, &r.pkg, &r.state, &r.tag, &p); err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		if err := r.kind.UnmarshalText([]byte(kind)); err != nil {
			return nil, fmt.Errorf("journal row %d: %w", r.id, err)
		}
		if err := json.Unmarshal([]byte(p), &r.p); err != nil {
			return nil, fmt.Errorf("journal row %d: %w", r.id, err)
		}
		out = append(out, &r)
	}
	return out, rows.Err()
}

func deleteJournal(ctx context.Context, tx *sql.Tx, txID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE tx = ?`, txID); err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	return nil
}

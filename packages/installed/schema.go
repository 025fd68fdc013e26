package installed

// migrations are the schema changes in order: migrations[i] takes a database
// from user_version i to i+1. Append only; never edit a released step, since
// databases in the field have already run it.
var migrations = []string{
	// 1: the receipts and file lists (what xipkg kept as info/ and files/).
	`CREATE TABLE packages (
		name           TEXT PRIMARY KEY,
		version        TEXT NOT NULL,
		family         TEXT NOT NULL,
		serial         INTEGER NOT NULL,
		description    TEXT NOT NULL DEFAULT '',
		dependencies   TEXT NOT NULL DEFAULT '[]',
		repo           TEXT NOT NULL DEFAULT '',
		archive_sha256 TEXT NOT NULL,
		archive_size   INTEGER NOT NULL DEFAULT 0,
		installed_size INTEGER NOT NULL DEFAULT 0,
		reason         TEXT NOT NULL CHECK (reason IN ('explicit', 'dependency')),
		installed_at   INTEGER NOT NULL,
		installed_by   TEXT NOT NULL DEFAULT '',
		source         TEXT NOT NULL DEFAULT '',
		key            TEXT NOT NULL DEFAULT '',
		options        TEXT NOT NULL DEFAULT '{}',
		install_hook   TEXT NOT NULL DEFAULT '',
		remove_hook    TEXT NOT NULL DEFAULT '',
		data_dir       TEXT NOT NULL
	) STRICT;
	CREATE TABLE files (
		path      TEXT PRIMARY KEY,
		package   TEXT NOT NULL REFERENCES packages (name) ON DELETE CASCADE,
		type      TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
		mode      INTEGER NOT NULL,
		size      INTEGER NOT NULL DEFAULT 0,
		sha256    TEXT NOT NULL DEFAULT '',
		link      TEXT NOT NULL DEFAULT '',
		mtime     INTEGER NOT NULL DEFAULT 0,
		config    INTEGER NOT NULL DEFAULT 0,
		from_hook INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE INDEX files_package ON files (package);
	CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) STRICT;
	INSERT INTO meta (key, value) VALUES ('generation', '0');`,

	// 2: the transaction journal (DESIGN §8).
	`CREATE TABLE journal (
		id         INTEGER PRIMARY KEY,
		tx         TEXT NOT NULL,
		seq        INTEGER NOT NULL,
		kind       TEXT NOT NULL,
		package    TEXT NOT NULL,
		state      TEXT NOT NULL CHECK (state IN ('pending', 'unhooked', 'staged', 'committed', 'done')),
		tag        TEXT NOT NULL,
		payload    TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		UNIQUE (tx, seq)
	) STRICT;`,
}

// SchemaVersion is the user_version of a database this build writes; it is
// len(migrations) (a test checks).
const SchemaVersion = 2

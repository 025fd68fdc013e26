// Package installed owns installed.db, the record of what packets put on a
// machine, and the transactional engine that changes the machine and the
// record together (DESIGN.md §3, §7, §8).
//
// # The database
//
// installed.db is SQLite (modernc.org/sqlite, pure Go) in WAL mode with
// synchronous=FULL and foreign keys on. PRAGMA user_version is the schema
// version; Open runs the missing steps of an append-only list of
// migrations, each in its own transaction, and refuses a database newer
// than the binary (ErrTooNew). The tables:
//
//   - packages: one row per installed package, the install receipt (after
//     xipkg): name (primary key), version, family, serial, description,
//     dependencies (JSON list of "name >= 1.2" strings), repo,
//     archive_sha256, archive_size, installed_size, reason ('explicit' or
//     'dependency'), installed_at (unix seconds), installed_by, source (URL
//     or peer), key (id of the key that verified the index), options
//     (JSON object), install_hook and remove_hook (the scripts themselves,
//     so a package can be removed when its archive is gone) and data_dir
//     (the package's own dir when it was installed, "/opt/packets/htop").
//   - files: one row per owned path: path (absolute machine path, primary
//     key, so that one path has one owner and owner lookups are one index
//     probe), package (cascading foreign key), type ('file', 'dir',
//     'symlink'), mode (fs.FileMode permission and special bits), size,
//     sha256 (regular files), link (symlink target), mtime (unix ns after
//     install, for verify --fast), config and from_hook (created by a hook,
//     not extracted). A package owns its dir, its data dir, every archive
//     entry and every path its hooks reported creating.
//   - journal: the engine's transaction log: id, tx, seq, kind, package,
//     state ('pending', 'unhooked', 'staged', 'committed'), tag (of the
//     temps), payload (JSON owned by the engine: old and new receipts, the
//     temp tags used, and the decisions taken at the decision point:
//     config files to keep and stale paths to delete), updated_at. Rows
//     are deleted when their transaction is done.
//   - meta: key/value. "generation" counts committed changes (a plan made
//     at one generation is refused at another); "data_dir" is the data dir
//     of the first commit, for the CLI's migrate-on-change check (the CLI
//     updates it after migrating).
//
// # The engine
//
// A Tx applies a batch of Changes: Begin journals them 'pending'; Stage
// extracts every new archive next to its final paths under temporary
// names (a package dir that does not exist yet is built whole as a hidden
// sibling of it), several at a time, each as soon as the caller has it
// (Change.Wait), and flushes them with one syncfs; PreHooks runs old
// remove.lua hooks ('unhooked'); Commit records 'staged' (the decision
// point), renames every temp (or new package dir) into place, deletes
// stale paths, flushes with one syncfs and writes every row in one SQL
// transaction, filled while the renames happen and committed after the
// flush ('committed'); PostHooks runs new install.lua hooks (each handed
// to the runner before the one before it is read) and records what they
// create; Done clears the journal. A batch of installs only writes its rows
// while Stage extracts, in the SQL transaction whose commit is the
// decision point; then renames, one syncfs and a small transaction for
// 'committed'. Durability is batched per phase,
// never per file or per package. Before the decision point, Abort or
// Recover rolls back (temps deleted, the old install.lua re-run if its
// remove.lua ran); from it on, Recover rolls forward from the recorded
// decisions, re-extracting the archive from the cache. After a crash at
// any instant, every package is wholly old or wholly new, the database
// matches the disk, no temp is left and a modified config file is kept.
//
// Moving a package's dir (a rename within a family, or a changed data
// dir: a Reinstall under a Layout with another DataDir) is one change:
// the new dir is installed, the old one deleted, modified config files
// move along.
//
// # Damage and repair
//
// Open first reads the file through a read-only connection, so that it
// never writes to a damaged database: a file shorter than its header
// records, or one SQLite cannot read the schema of, is a *DamagedError
// (with quick_check's findings) naming the repair: `packets db restore`,
// then `packets verify --repair`. The full quick_check reads every page
// (about 20 ms for 1,000 packages and 30,000 files), so Open leaves it to
// Check, which Verify runs first; damage met by a write or a Snapshot is
// a *DamagedError too. An empty file is a new database unless a backup
// exists. After each successful apply the CLI calls Backup, which saves
// installed.db.bak (VACUUM INTO a temp, fsync, rename); Restore checks
// that backup, keeps the damaged file as installed.db.damaged-<unix
// time> (its WAL beside it) and puts a copy of the backup in place. Every
// commit is checkpointed into the database file before it returns, so a
// WAL deleted after a crash loses no committed change (a stale -shm is
// rebuilt); only a checkpoint cut short by a reader in another process
// leaves committed frames in the WAL until the next one.
//
// # Limits
//
// A path that changes between a directory and a file across an upgrade is
// refused as a conflict (remove the package, then install the new build).
// Hook errors never make Recover fail: they are reported, and the files
// and rows agree either way.
//
// Hooks run through a HookFunc the caller provides (the lua sandbox). The
// paths a hook reports creating are recorded as owned by its package, but
// only inside the package's own dir or Layout.BinDir, and never one that
// another package owns.
//
// This package imports only packages (and SQLite); it never prints and
// takes its logger from Options. The CLI calls it under its writer lock;
// reconcile drives a Tx.
package installed

// Package index owns repositories: signing keys, the signed release and its
// SQLite index (build, sign, verify, query), and syncing a client's copy of
// the index from a mirror.
//
// # Repository layout
//
// A repository (mirror) root holds static files:
//
//	release.toml          signed summary (Release): repo, version, issued, expires, and [index] file, size, sha256
//	release.toml.minisig  minisign signature of release.toml (pre-hashed Ed25519, as minisign -S)
//	index-<version>.db    the SQLite index that release names
//	packages/*.tar.zst    the archives; the index names them "packages/<file>"
//
// BuildRepo (packets repo index) writes the index, then the signature, then
// release.toml, each atomically; it keeps the previous release's index for
// clients that fetched the previous release.toml a moment earlier and
// removes older ones. It reuses the rows of archives whose SHA-256 is in the
// previous index (re-indexing an unchanged repository only hashes the
// archives), and validates every other archive fully with packages.Inspect.
// Every run publishes version = previous + 1. It holds a flock on the
// directory, so two runs cannot publish the same version.
//
// # The index database
//
// Tables: meta (format, repo, version, issued, expires), packages (one row
// per archive: every manifest field, file name, SHA-256, sizes, hooks,
// config and setuid lists; UNIQUE(family, serial)), and files (package_id,
// rpath). files holds every non-directory entry under data/ (regular files,
// symlinks, hard links; directories are left out: they are shared and would
// only add noise to searches) as the byte-reversed "/"+path, so that a
// suffix search is a range scan of the files_rpath index. Paths are stored
// relative to data/ ("bin/htop"); queries map them to installed paths with
// the configured data dir: "<data dir>/<name>/data/bin/htop", by default
// under DefaultDataDir (/opt/packets).
//
// SearchFile matches a suffix at a path-component boundary: "bin/htop"
// matches .../data/bin/htop and .../data/usr/bin/htop but not
// .../data/sbin/htop; a leading "/" changes nothing, so a whole installed
// path matches exactly itself; the suffix may extend into the package's own
// directory ("htop/data/bin/htop").
//
// Readers open an index with mode=ro&immutable=1 on one pinned connection,
// so a handle keeps reading the file it opened even after Sync renames a
// newer one over it.
//
// # Client state (StateDir, e.g. /var/lib/packets)
//
//	index.db                  the default repository's verified index
//	index.sync.toml           the last release accepted for it (SyncState): version, issued, expires,
//	                          signing key, index ref, and the mirror URL `packets sync URL` was given
//	index-<repo>.db           a named repository's index ([repos.<repo>] in config.toml)
//	index-<repo>.sync.toml    its last accepted release
//	.index*.db.tmp-*          a download in progress (removed on failure, swept by the next Sync)
//
// The repository name "default" is the default repository, so it cannot
// name a [repos.*] entry.
//
// # Trust
//
// Sync refuses, each with an *Error matching a sentinel and saying what to
// do: a signature by an untrusted key (ErrUnknownKey), a bad signature
// (ErrBadSignature), a release older than the last accepted or different
// under the same version (ErrRollback), an expired release (ErrExpired; the
// time used is never earlier than the last accepted release's issue time),
// an index of the wrong size or hash (ErrIndexMismatch, wrapping
// *packages.SizeMismatchError or *packages.DigestMismatchError), an index
// larger than the cap (ErrTooLarge, before downloading), an index that is
// not a usable SQLite index (ErrBadIndex), and mirror failures (ErrNotFound,
// ErrMirror). The first release seen for a repository is trusted on its
// signature alone, and its repository name is remembered: a mirror that later
// serves another repository's release is refused (ErrBadRelease).
//
// The package never prints; it logs through the *slog.Logger it is given.
// It imports packages (the archive reader), SQLite and minisign; it knows
// nothing of HTTP (a Getter is handed in) or of the command line.
package index

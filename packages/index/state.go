package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/packets-dev/packets/packages"
)

// SyncState is what Sync remembers of the last release it accepted for a
// repository: the rollback and freeze checks compare against it.
type SyncState struct {
	Release
	KeyID  uint64    // the key that signed it
	Synced time.Time // when it was accepted
	Mirror string    // SyncOptions.Mirror of that sync: the URL `packets sync URL` was given, or ""
}

// stateTOML is the on-disk shape of a sync state file.
type stateTOML struct {
	Repo    string    `toml:"repo"`
	Version int64     `toml:"version"`
	Issued  time.Time `toml:"issued"`
	Expires time.Time `toml:"expires"`
	Key     string    `toml:"key"`
	Synced  time.Time `toml:"synced"`
	Mirror  string    `toml:"mirror"`
	Index   struct {
		File   string `toml:"file"`
		Size   int64  `toml:"size"`
		SHA256 string `toml:"sha256"`
	} `toml:"index"`
}

func repoStem(repo string) string {
	if repo == "" || repo == DefaultRepoName {
		return "index"
	}
	return "index-" + repo
}

// IndexPath is where Sync keeps repository repo's verified index in
// stateDir: index.db for the default repository ("" or "default"),
// index-<repo>.db for a named one.
func IndexPath(stateDir, repo string) string {
	return filepath.Join(stateDir, repoStem(repo)+".db")
}

// StatePath is where Sync records the last release it accepted for repo:
// index.sync.toml, or index-<repo>.sync.toml.
func StatePath(stateDir, repo string) string {
	return filepath.Join(stateDir, repoStem(repo)+".sync.toml")
}

// ReadSyncState returns what Sync recorded for repository repo ("" or
// "default" for the default repository); the zero SyncState if it was never
// synced.
func ReadSyncState(stateDir, repo string) (SyncState, error) {
	return readState(StatePath(stateDir, repo))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	b, _ := json.Marshal(s) // JSON string escapes are valid TOML basic-string escapes
	return string(b)
}

// readState reads a state file; a missing one is the zero state.
func readState(p string) (SyncState, error) {
	data, err := readSmallFile(p, MaxReleaseSize)
	if errors.Is(err, fs.ErrNotExist) {
		return SyncState{}, nil
	}
	if err != nil {
		return SyncState{}, err
	}
	var raw stateTOML
	if _, err := packages.DecodeTOMLStrict(filepath.Base(p), data, &raw); err != nil {
		return SyncState{}, stateErr(p, err)
	}
	st := SyncState{Release: Release{
		Repo: raw.Repo, Version: raw.Version, Issued: raw.Issued.UTC(), Expires: raw.Expires.UTC(),
		Index: IndexRef{File: raw.Index.File, Size: raw.Index.Size},
	}, Synced: raw.Synced, Mirror: raw.Mirror}
	if st.Index.SHA256, err = packages.ParseDigest(raw.Index.SHA256); err != nil {
		return SyncState{}, stateErr(p, err)
	}
	if st.KeyID, err = strconv.ParseUint(raw.Key, 16, 64); err != nil {
		return SyncState{}, stateErr(p, fmt.Errorf("key %q: %w", raw.Key, err))
	}
	if err := st.Validate(); err != nil {
		return SyncState{}, stateErr(p, err)
	}
	return st, nil
}

func stateErr(p string, err error) error {
	return fmt.Errorf("sync state %s: %w: delete it to start over from the index in place", p, oneLine(err))
}

// encode writes st as TOML.
func (st SyncState) encode() []byte {
	var b bytes.Buffer
	b.WriteString("# written by packets sync: the last release accepted for this repository\n")
	fmt.Fprintf(&b, "repo = %q\nversion = %d\n", st.Repo, st.Version)
	fmt.Fprintf(&b, "issued = %s\nexpires = %s\n", st.Issued.UTC().Format(time.RFC3339), st.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "key = %q\nsynced = %s\n", KeyID(st.KeyID), st.Synced.UTC().Format(time.RFC3339))
	if st.Mirror != "" {
		fmt.Fprintf(&b, "mirror = %s\n", tomlString(st.Mirror))
	}
	fmt.Fprintf(&b, "\n[index]\nfile = %q\nsize = %d\nsha256 = %q\n", st.Index.File, st.Index.Size, st.Index.SHA256)
	return b.Bytes()
}

// lastAccepted returns the newest release accepted for the repository: the
// state file's, or the one of the index in place if that is newer (after a
// crash between switching the index and writing the state, or with the state
// file deleted); Index is then zero. inPlace reports whether the index file
// in place opens and belongs to that release.
func lastAccepted(ctx context.Context, stateDir, repo string) (st SyncState, inPlace bool, err error) {
	st, err = readState(StatePath(stateDir, repo))
	if err != nil {
		return st, false, err
	}
	p := IndexPath(stateDir, repo)
	if _, err := os.Stat(p); err != nil {
		return st, false, nil
	}
	ix, err := open(ctx, p)
	if err != nil {
		return st, false, nil // unusable: it will be replaced
	}
	defer ix.Close()
	if ix.release.Version > st.Version {
		st = SyncState{Release: ix.release, Mirror: st.Mirror}
	}
	return st, ix.release.Version == st.Version && ix.release.Repo == st.Repo, nil
}

// OpenSynced opens the current verified index of repository repo ("" or
// "default" for the default repository) in stateDir. Its Release() carries
// the signed IndexRef it was verified against. Without one, the error
// matches ErrNotSynced and says to run packets sync.
func OpenSynced(stateDir, repo string) (*Index, error) {
	if repo == DefaultRepoName {
		repo = ""
	}
	p := IndexPath(stateDir, repo)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		name := displayRepo(repo)
		return nil, &Error{Kind: ErrNotSynced, Detail: fmt.Sprintf("no index of repository %s", name), Hint: "run 'packets sync' first"}
	}
	ix, err := open(context.Background(), p)
	if e, ok := errors.AsType[*Error](err); ok && e.Kind == ErrBadIndex && e.Hint == "" {
		e.Hint = "run 'packets sync' to download it again"
	}
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", p, err)
	}
	ix.repo = repo
	if st, err := readState(StatePath(stateDir, repo)); err == nil && st.Version == ix.release.Version {
		ix.release.Index = st.Index
	}
	return ix, nil
}

func displayRepo(repo string) string {
	if repo == "" {
		return DefaultRepoName
	}
	return repo
}

package index

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"aead.dev/minisign"

	"github.com/packets-dev/packets/packages"
)

// DefaultMaxIndexSize caps the index a release may name unless
// SyncOptions says otherwise: 20,000 packages with a million files take
// about a tenth of it.
const DefaultMaxIndexSize = 1 << 30

// Getter reads a file of a repository. path is relative to the repository
// root ("release.toml", "index-7.db"). An implementation refuses a body it
// knows to be larger than maxSize (Content-Length) and may cut one off as
// soon as it grows past it; Sync enforces the cap again while reading. A
// file the mirror does not have (HTTP 404) is an error wrapping ErrNotFound.
type Getter interface {
	Get(ctx context.Context, path string, maxSize int64) (io.ReadCloser, error)
}

// SyncOptions configures Sync.
type SyncOptions struct {
	Repo         string               // "" (or "default") for the default repository, else its config.toml name
	Get          Getter               // the repository's mirrors
	Keys         []minisign.PublicKey // the keys trusted for this repository
	StateDir     string               // e.g. <root>/var/lib/packets; see IndexPath and StatePath
	Now          func() time.Time     // nil means time.Now
	MaxIndexSize int64                // 0 means DefaultMaxIndexSize
	Mirror       string               // recorded in the SyncState on success (the URL of `packets sync URL`); "" keeps the recorded one
	Logger       *slog.Logger         // nil discards
}

// SyncResult says what Sync did.
type SyncResult struct {
	Release  Release // the release now in place
	Changed  bool    // a new index was installed
	Previous int64   // the version accepted before, 0 if none
}

// Sync brings one repository's index up to date: it fetches release.toml and
// its signature, verifies them against the trusted keys, refuses a release
// older than the last accepted one (rollback), a different release under the
// same version, or an expired one (freeze; "now" is never taken earlier than
// the last accepted release's issue time, so setting the clock back does not
// revive an expired release). It then downloads the index into a temporary
// file in StateDir with the size cap enforced while reading, checks its size
// and SHA-256, opens it as SQLite and checks it, renames it over the previous
// index, and only then records the accepted release. Every failure leaves the
// previous index and state as they were. The caller holds the packets lock.
func Sync(ctx context.Context, opt SyncOptions) (SyncResult, error) {
	if err := opt.prepare(); err != nil {
		return SyncResult{}, err
	}
	log := discardIfNil(opt.Logger).With("repo", displayRepo(opt.Repo))
	dest := IndexPath(opt.StateDir, opt.Repo)

	// 1. What was accepted before.
	last, inPlace, err := lastAccepted(ctx, opt.StateDir, opt.Repo)
	if err != nil {
		return SyncResult{}, err
	}
	// 2. The signed release, checked against the keys and the last one.
	rel, keyID, err := fetchRelease(ctx, opt.Get, opt.Keys)
	if err != nil {
		return SyncResult{}, err
	}
	if err := checkFresh(rel, last, opt.Now().UTC()); err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Release: rel, Previous: last.Version}
	if rel.Version == last.Version && rel.Index == last.Index && inPlace && hasSize(dest, rel.Index.Size) {
		log.Info("index up to date", "version", rel.Version)
		if opt.Mirror != "" && opt.Mirror != last.Mirror {
			last.Mirror = opt.Mirror
			return res, writeState(opt, last)
		}
		return res, nil
	}
	// 3. The index: download, verify, switch.
	if err := installIndex(ctx, opt, rel, dest); err != nil {
		return SyncResult{}, err
	}
	// 4. Remember the release, now that its index is in place.
	st := SyncState{Release: rel, KeyID: keyID, Synced: opt.Now().UTC(), Mirror: cmp.Or(opt.Mirror, last.Mirror)}
	if err := writeState(opt, st); err != nil {
		return SyncResult{}, err
	}
	res.Changed = true
	log.Info("index updated", "version", rel.Version, "previous", last.Version, "size", rel.Index.Size, "key", KeyID(keyID))
	return res, nil
}

// prepare fills defaults, checks the options, creates StateDir and removes
// what an interrupted sync of the repository left there.
func (opt *SyncOptions) prepare() error {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Repo == DefaultRepoName {
		opt.Repo = ""
	}
	if opt.Get == nil {
		return errors.New("sync: no mirror configured")
	}
	if opt.Repo != "" {
		if err := ValidateRepoName(opt.Repo); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(opt.StateDir, 0o755); err != nil {
		return err
	}
	removeTemps(IndexPath(opt.StateDir, opt.Repo))
	removeTemps(StatePath(opt.StateDir, opt.Repo))
	return nil
}

func writeState(opt SyncOptions, st SyncState) error {
	if err := writeFileAtomic(StatePath(opt.StateDir, opt.Repo), st.encode(), 0o644); err != nil {
		return fmt.Errorf("record sync state: %w", err)
	}
	return nil
}

// fetchRelease gets release.toml and its signature and verifies them.
func fetchRelease(ctx context.Context, get Getter, keys []minisign.PublicKey) (Release, uint64, error) {
	data, err := getSmall(ctx, get, ReleaseFile, MaxReleaseSize)
	if err != nil {
		return Release{}, 0, err
	}
	sig, err := getSmall(ctx, get, SignatureFile, MaxSignatureSize)
	if err != nil {
		return Release{}, 0, err
	}
	return verifyRelease(data, sig, keys)
}

// getSmall reads a small file whole, enforcing maxSize while reading.
func getSmall(ctx context.Context, get Getter, name string, maxSize int64) ([]byte, error) {
	rc, err := get.Get(ctx, name, maxSize)
	if err != nil {
		return nil, mirrorErr(ctx, name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSize+1))
	if err != nil {
		return nil, mirrorErr(ctx, name, err)
	}
	if int64(len(data)) > maxSize {
		return nil, &Error{Kind: ErrBadRelease, Detail: fmt.Sprintf("%s is larger than the %d bytes allowed", name, maxSize), Hint: hintTampered}
	}
	return data, nil
}

// mirrorErr explains a Getter's failure.
func mirrorErr(ctx context.Context, name string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("get %s: %w", name, err)
	case errors.Is(err, ErrNotFound) && name == ReleaseFile:
		return &Error{Kind: ErrNotFound, Detail: "get " + name, Err: err, Hint: "check that the URL is the repository's root, where release.toml is"}
	case errors.Is(err, ErrNotFound):
		return &Error{Kind: ErrNotFound, Detail: "get " + name, Err: err, Hint: "the mirror is incomplete or being updated: try again later, or use another mirror"}
	}
	return &Error{Kind: ErrMirror, Detail: "get " + name, Err: err, Hint: hintMirror}
}

// checkFresh applies the rollback, identity and freeze rules.
func checkFresh(rel Release, last SyncState, now time.Time) error {
	switch {
	case rel.Version < last.Version:
		return &Error{Kind: ErrRollback,
			Detail: fmt.Sprintf("release %d is older than release %d, accepted before", rel.Version, last.Version),
			Hint:   "the mirror is stale or replays an old release: use an up-to-date mirror"}
	case rel.Version == last.Version && !last.Index.SHA256.IsZero() && rel.Index != last.Index:
		return &Error{Kind: ErrRollback,
			Detail: fmt.Sprintf("release %d names another index than the release %d accepted before", rel.Version, last.Version),
			Hint:   "the repository re-published a version: ask its owner to run 'packets repo index' again"}
	case last.Repo != "" && rel.Repo != last.Repo:
		return &Error{Kind: ErrBadRelease,
			Detail: fmt.Sprintf("the release is of repository %q, but %q was synced here before", rel.Repo, last.Repo),
			Hint:   "check the mirror URL (if the repository was renamed, delete the sync state file)"}
	}
	// Freeze: time never runs backwards past a release already accepted.
	effective := now
	if now.Before(last.Issued) {
		effective = last.Issued
	}
	if effective.Before(rel.Expires) {
		return nil
	}
	e := &Error{Kind: ErrExpired, Detail: fmt.Sprintf("release %d expired at %s", rel.Version, rel.Expires.Format(time.RFC3339)), Hint: hintStale}
	if effective != now {
		e.Detail += fmt.Sprintf(" (the clock reads %s, before release %d accepted earlier was issued at %s)",
			now.Format(time.RFC3339), last.Version, last.Issued.Format(time.RFC3339))
		e.Hint = "fix the system clock, then use an up-to-date mirror"
	}
	return e
}

// hasSize reports whether p is a regular file of the given size.
func hasSize(p string, size int64) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// installIndex downloads rel's index beside dest, verifies it and renames it
// over dest. On any failure dest is untouched and the download removed.
func installIndex(ctx context.Context, opt SyncOptions, rel Release, dest string) error {
	maxSize := cmpOr64(opt.MaxIndexSize, DefaultMaxIndexSize)
	if rel.Index.Size > maxSize {
		return &Error{Kind: ErrTooLarge,
			Detail: fmt.Sprintf("%s is %d bytes, more than the %d allowed", rel.Index.File, rel.Index.Size, maxSize),
			Hint:   "raise the index size limit in config.toml if the repository is that large"}
	}
	f, err := createTemp(dest)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	err = download(ctx, opt.Get, rel.Index, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := verifyIndexFile(ctx, tmp, rel); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return err
	}
	return packages.SyncPath(filepath.Dir(dest))
}

// download copies ref's file into f, hashing as it writes, and checks its
// size and digest. It reads at most one byte more than promised.
func download(ctx context.Context, get Getter, ref IndexRef, f *os.File) error {
	rc, err := get.Get(ctx, ref.File, ref.Size)
	if err != nil {
		return mirrorErr(ctx, ref.File, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, ref.Size+1))
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, io.ErrUnexpectedEOF):
		return truncated(ref, n)
	case err != nil:
		return mirrorErr(ctx, ref.File, err)
	case n > ref.Size:
		return &Error{Kind: ErrIndexMismatch, Err: &packages.SizeMismatchError{What: ref.File, Want: ref.Size, Got: -1}, Hint: hintTampered}
	case n < ref.Size:
		return truncated(ref, n)
	}
	if got := packages.Digest(h.Sum(nil)); got != ref.SHA256 {
		return &Error{Kind: ErrIndexMismatch, Err: &packages.DigestMismatchError{What: ref.File, Want: ref.SHA256, Got: got}, Hint: hintTampered}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return nil
}

func truncated(ref IndexRef, n int64) error {
	return &Error{Kind: ErrIndexMismatch, Err: &packages.SizeMismatchError{What: ref.File, Want: ref.Size, Got: n},
		Hint: "the download was cut short: run 'packets sync' again, or use another mirror"}
}

// verifyIndexFile opens a downloaded index as SQLite, runs quick_check, and
// checks its format and that it belongs to rel.
func verifyIndexFile(ctx context.Context, p string, rel Release) error {
	ix, err := open(ctx, p)
	if err == nil {
		err = ix.quickCheck(ctx)
		if err == nil && (ix.release.Version != rel.Version || ix.release.Repo != rel.Repo) {
			err = &Error{Kind: ErrBadIndex,
				Detail: fmt.Sprintf("it belongs to release %d of %q, not release %d of %q", ix.release.Version, ix.release.Repo, rel.Version, rel.Repo),
				Hint:   hintOwner}
		}
		ix.Close()
	}
	if e, ok := errors.AsType[*Error](err); ok {
		e.Detail = rel.Index.File + ": " + e.Detail
		e.Hint = cmp.Or(e.Hint, hintOwner)
		return e
	}
	if err != nil {
		return fmt.Errorf("%s: %w", rel.Index.File, err)
	}
	return nil
}

func cmpOr64(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

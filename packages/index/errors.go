package index

import (
	"errors"
	"strings"
)

// Sentinels for the conditions a caller branches on. Every error that Sync,
// VerifyRelease and OpenSynced return for one of them is an *Error that
// matches it with errors.Is and says, on one line, what to do.
var (
	// ErrUnknownKey: the release is signed by a key that is not trusted.
	ErrUnknownKey = errors.New("release signed by an untrusted key")
	// ErrBadSignature: release.toml does not match its signature, or the
	// signature file is not a minisign signature.
	ErrBadSignature = errors.New("bad release signature")
	// ErrBadRelease: release.toml is signed by a trusted key but malformed,
	// too large, or names another repository than the one accepted before.
	ErrBadRelease = errors.New("bad release")
	// ErrExpired: the release is past its expiry time (a stale or frozen mirror,
	// or a clock set back).
	ErrExpired = errors.New("release expired")
	// ErrRollback: the release is older than the last one accepted, or differs
	// from it under the same version.
	ErrRollback = errors.New("release rollback")
	// ErrIndexMismatch: the downloaded index is not the size or SHA-256 the
	// signed release names (a truncated download or a tampered mirror). It
	// wraps a *packages.SizeMismatchError or *packages.DigestMismatchError.
	ErrIndexMismatch = errors.New("index does not match the signed release")
	// ErrTooLarge: the signed release names an index larger than the caller's
	// cap; nothing was downloaded.
	ErrTooLarge = errors.New("index too large")
	// ErrBadIndex: the index matches its signed hash but is not a usable
	// packets index (not SQLite, damaged, another format).
	ErrBadIndex = errors.New("bad index")
	// ErrNotFound is what a Getter wraps for a file the mirror does not have
	// (HTTP 404).
	ErrNotFound = errors.New("not found on the mirror")
	// ErrMirror: a Getter failed for another reason (unreachable, HTTP 5xx,
	// cut off). The Getter's own error is wrapped.
	ErrMirror = errors.New("mirror failed")
	// ErrNotSynced: no index has been synced for the repository yet.
	ErrNotSynced = errors.New("repository not synced")
)

// Error is a refusal from this package: what was found, the underlying cause
// if any, and what the user should do. errors.Is matches Kind; errors.As
// reaches Err (for example a *packages.DigestMismatchError).
type Error struct {
	Kind   error  // one of the sentinels above
	Detail string // what was found, e.g. "release 11 is older than release 12, accepted before"
	Err    error  // the cause, or nil
	Hint   string // what to do, e.g. "use an up-to-date mirror"
}

func (e *Error) Error() string {
	parts := make([]string, 0, 3)
	if e.Detail != "" {
		parts = append(parts, e.Detail)
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	if e.Hint != "" {
		parts = append(parts, e.Hint)
	}
	if len(parts) == 0 {
		return e.Kind.Error()
	}
	return strings.Join(parts, ": ")
}

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Hints shared by several refusals.
const (
	hintMirror   = "check the mirror URL and the network, or add another mirror"
	hintStale    = "use an up-to-date mirror, or ask the repository owner to run 'packets repo index' again"
	hintTampered = "the mirror serves tampered or corrupt files: run 'packets sync' again, or use another mirror"
	hintOwner    = "the repository is broken: tell its owner"
	hintKeys     = "add the repository's public key (.pub) to /etc/packets/keys, or to the repository's keys in config.toml"
)

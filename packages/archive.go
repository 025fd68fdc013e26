package packages

import (
	"errors"
	"fmt"
	"io/fs"
)

// The archive format, as Build writes it and Inspect and Extract accept it
// (DESIGN §4), where the design leaves a choice:
//
//   - Stream: one zstd stream (several frames are accepted, as by the zstd
//     tool) holding a POSIX tar that ends with its end-of-archive marker
//     (a tar cut at an entry boundary is refused). After the marker only
//     zero bytes may follow (tar's record padding); anything else, and
//     anything after the zstd stream, is refused: one archive, one meaning.
//     PAX global headers, GNU sparse files and every type other than
//     directory, regular file, symlink and hard link are refused.
//   - Order: manifest.toml first (at most MaxManifestSize); SumsFile, if
//     present, second (at most MaxSumsSize; it must then list exactly the
//     regular files of data/, see SumsFile); install.lua and remove.lua,
//     at most MaxHookSize each, present exactly when [Hooks] declares
//     them; "data/" and the entries below it. Build writes SumsFile, then
//     hooks, before data/, and data/ sorted by path; readers do not
//     require the order of the others.
//   - Names: valid UTF-8, no control or bidirectional formatting
//     characters, relative, clean, no "..", components of at most 255 bytes,
//     none starting with TempPrefix, each path once. The "data" directory
//     entry is optional; its mode is not applied (Extract creates Dest 0755).
//   - Symlinks: relative, clean targets that, resolved from the link's
//     directory, stay inside the package directory (data/'s parent, so
//     "../install.lua" is allowed), not necessarily inside data/. No entry
//     may be below a symlink or a file.
//   - Hard links: only to an earlier regular file (not to another hard
//     link); never to or as a [Files] config file; a link to a setuid or
//     setgid file must be declared in [Files] setuid too.
//   - Modes: setuid/setgid only on regular files that [Files] setuid
//     declares; sticky only on directories. Owners and times are not kept.

// MaxHookSize bounds each hook script (install.lua, remove.lua) in an
// archive; hooks are read into memory.
const MaxHookSize = 1 << 20

// maxComponentLen is NAME_MAX on every Linux filesystem: no path component
// of an archive entry may be longer.
const maxComponentLen = 255

// TempPrefix starts the base name of every temporary file that Extract
// stages (see TempName). Archive entries whose base name starts with it are
// refused, so that a temporary name can never collide with a file of the
// package and a recovery sweep of "<dir>/.pk-*" can never delete one.
const TempPrefix = ".pk-"

// HookTempPrefix starts the temporary names through which the hook file
// functions write (os.copy, os.symlink, in the package's dir and the bin
// dir). After a crash interrupted a hook, recovery deletes "<dir>/.pk-hook-*"
// in the dirs the interrupted transaction's hooks could write to.
const HookTempPrefix = TempPrefix + "hook-"

// ErrTooLarge is wrapped by the error reading an archive that decompresses
// to more than Limits allow: a zstd bomb, an oversize file or too many
// entries. It is terminal: the same bytes will always fail.
var ErrTooLarge = errors.New("archive exceeds limits")

// Limits bounds the resources that reading one archive may use. A zero field
// means the DefaultLimits value for that field.
type Limits struct {
	MaxEntries   int    // entries of any type, including manifest.toml and hooks
	MaxFileSize  int64  // bytes of one regular file
	MaxTotalSize int64  // bytes of the whole decompressed tar stream
	MaxWindow    uint64 // zstd window (back-reference distance) the decoder accepts
	MaxNameLen   int    // bytes of an entry's archive path or a symlink target
}

// DefaultLimits returns the limits packets applies to every archive:
//
//   - 1<<19 entries (524,288): about 2.5 times the largest distribution
//     packages (TeX Live's font bundles have ~200k files), while the per-entry
//     bookkeeping stays under ~150 MiB in the worst case;
//   - 4 GiB per file and 16 GiB decompressed in total: larger than any
//     single package of a desktop distribution, small enough that a bomb
//     cannot fill a root filesystem before it is stopped;
//   - a 64 MiB zstd window: "zstd --long" (27 = 128 MiB) and "--ultra -22" are
//     refused, every ordinary level (1-19 use at most 8 MiB) is accepted, and
//     the decoder's memory stays bounded by about twice the window;
//   - 1024-byte archive paths and symlink targets: installed under
//     /opt/packets/<name>/, they stay well inside PATH_MAX (4096).
func DefaultLimits() Limits {
	return Limits{
		MaxEntries:   1 << 19,
		MaxFileSize:  4 << 30,
		MaxTotalSize: 16 << 30,
		MaxWindow:    64 << 20,
		MaxNameLen:   1024,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = d.MaxTotalSize
	}
	if l.MaxWindow == 0 {
		l.MaxWindow = d.MaxWindow
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = d.MaxNameLen
	}
	return l
}

// EntryType is the kind of a data entry. Archives hold no other kinds.
type EntryType uint8

// The entry types an archive may hold.
const (
	TypeDir EntryType = iota + 1
	TypeFile
	TypeSymlink
	TypeHardlink
)

func (t EntryType) String() string {
	switch t {
	case TypeDir:
		return "dir"
	case TypeFile:
		return "file"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one validated entry of an archive's data/ tree.
type Entry struct {
	Path   string      // archive path, e.g. "data/bin/htop" (no trailing slash)
	Type   EntryType   //
	Mode   fs.FileMode // permission bits plus fs.ModeSetuid/ModeSetgid/ModeSticky as applicable; 0777 for symlinks
	Size   int64       // regular files and hard links (the target's size)
	Link   string      // symlink target, or for hard links the archive path of the earlier file
	Digest Digest      // SHA-256 of a regular file's content (hard links: the target's)
}

// Contents is what a validated archive holds, apart from file contents.
type Contents struct {
	Manifest      *Manifest
	Entries       []Entry // data/ entries, in archive order (the "data" dir itself excluded)
	InstallHook   []byte  // nil when absent
	RemoveHook    []byte  // nil when absent
	InstalledSize int64   // sum of regular file sizes (hard links counted once)
}

// EntryError says why an archive was refused, naming the entry at fault.
// Path is "" for a problem of the stream as a whole (not zstd, garbage after
// the end). Err, when set, is the underlying cause (ErrTooLarge,
// io.ErrUnexpectedEOF, zstd.ErrWindowSizeExceeded, an *fs.PathError).
type EntryError struct {
	Path   string
	Reason string
	Err    error
}

func (e *EntryError) Error() string {
	if e.Path == "" {
		return "archive: " + e.Reason
	}
	return fmt.Sprintf("archive entry %q: %s", e.Path, e.Reason)
}

func (e *EntryError) Unwrap() error { return e.Err }

func entryErr(p, format string, args ...any) *EntryError {
	return &EntryError{Path: p, Reason: fmt.Sprintf(format, args...)}
}

// wrapEntryErr names the entry in err, unless err already names one.
func wrapEntryErr(p string, err error) error {
	if err == nil {
		return nil
	}
	if ee, ok := errors.AsType[*EntryError](err); ok && ee.Path != "" {
		return err
	}
	return &EntryError{Path: p, Reason: err.Error(), Err: err}
}

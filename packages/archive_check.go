package packages

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"
)

// entryKind says what the reader must do with a validated entry.
type entryKind uint8

const (
	kindManifest entryKind = iota + 1
	kindSums
	kindInstallHook
	kindRemoveHook
	kindDataRoot // the "data" directory itself
	kindData     // an entry below data/, appended to Contents.Entries
)

// implicitDir marks, in checker.paths, a directory that no entry names but
// that is the parent of one.
const implicitDir = -1

// checker validates the entries of one archive, in order. It is the single
// implementation of the archive rules (DESIGN §4): Inspect and Extract run
// it on what they read, and Build runs it on what it writes, so the builder
// refuses exactly what the reader would refuse.
type checker struct {
	lim      Limits
	c        Contents
	count    int            // entries seen, all kinds
	declared int64          // sum of regular file sizes, as declared by the headers
	paths    map[string]int // data paths: index into c.Entries, or implicitDir
	hooks    [2]bool        // install.lua, remove.lua seen
	data     bool           // "data" directory entry seen
	// sums is the parsed SumsFile (nil: the archive has none), and
	// listedFiles the regular files of the archive found in it so far.
	sums        map[string]Digest
	listedFiles int
}

func newChecker(lim Limits) *checker {
	return &checker{lim: lim.withDefaults(), paths: make(map[string]int)}
}

// check validates the next header and, for a data entry, appends it to
// c.Entries (a regular file's Digest comes from SumsFile, or is set by
// setDigest once its content was read).
func (k *checker) check(hdr *tar.Header) (entryKind, error) {
	k.count++
	if k.count > k.lim.MaxEntries {
		return 0, &EntryError{Path: hdr.Name, Reason: fmt.Sprintf("more than %d entries", k.lim.MaxEntries), Err: ErrTooLarge}
	}
	typ, err := headerType(hdr)
	if err != nil {
		return 0, err
	}
	name := hdr.Name
	if typ == TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	if reason := checkPath(name, k.lim.MaxNameLen); reason != "" {
		return 0, entryErr(hdr.Name, "%s", reason)
	}
	if k.count == 1 && name != ManifestFile {
		return 0, entryErr(name, "the first entry of an archive must be %s", ManifestFile)
	}
	switch {
	case name == ManifestFile:
		if k.count != 1 {
			return 0, entryErr(name, "duplicate entry (%s must be the first entry, once)", ManifestFile)
		}
		return kindManifest, k.topFile(name, typ, hdr.Size, MaxManifestSize)
	case name == SumsFile:
		if k.count != 2 {
			return 0, entryErr(name, "must be the second entry, right after %s, once", ManifestFile)
		}
		return kindSums, k.topFile(name, typ, hdr.Size, MaxSumsSize)
	case k.c.Manifest == nil:
		panic("packages: checker used before setManifest") // the reader and the builder parse the manifest first
	case name == InstallHook:
		return kindInstallHook, k.hook(name, typ, hdr.Size, 0, k.c.Manifest.Hooks.Install)
	case name == RemoveHook:
		return kindRemoveHook, k.hook(name, typ, hdr.Size, 1, k.c.Manifest.Hooks.Remove)
	case name == DataDir:
		if typ != TypeDir {
			return 0, entryErr(name, "must be a directory, not a %s", typ)
		}
		if k.data {
			return 0, entryErr(name, "duplicate entry")
		}
		k.data = true
		return kindDataRoot, nil
	case strings.HasPrefix(name, DataDir+"/"):
		return kindData, k.dataEntry(name, typ, hdr)
	}
	return 0, entryErr(name, "not allowed at the top of an archive (only %s, %s, %s, %s and %s/)", ManifestFile, SumsFile, InstallHook, RemoveHook, DataDir)
}

// headerType maps a tar type flag to an EntryType, refusing every other kind
// of file, and sparse files (whose logical size is not what is stored).
func headerType(hdr *tar.Header) (EntryType, error) {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return 0, entryErr(hdr.Name, "sparse files are not allowed")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return TypeDir, nil
	case tar.TypeReg:
		return TypeFile, nil
	case tar.TypeSymlink:
		return TypeSymlink, nil
	case tar.TypeLink:
		return TypeHardlink, nil
	case tar.TypeChar, tar.TypeBlock:
		return 0, entryErr(hdr.Name, "device nodes are not allowed")
	case tar.TypeFifo:
		return 0, entryErr(hdr.Name, "FIFOs are not allowed")
	}
	return 0, entryErr(hdr.Name, "entry type %q is not allowed (only directories, regular files, symlinks and hard links)", hdr.Typeflag)
}

// checkPath returns why p is not an acceptable archive path, or "".
func checkPath(p string, maxLen int) string {
	switch {
	case p == "":
		return "empty name"
	case len(p) > maxLen:
		return fmt.Sprintf("name is longer than %d bytes", maxLen)
	case !utf8.ValidString(p):
		return "name is not valid UTF-8"
	case strings.ContainsFunc(p, isControl):
		return "name contains a control or bidirectional formatting character"
	case strings.HasPrefix(p, "/"):
		return "absolute name"
	case p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../"):
		return `name contains ".."`
	case path.Clean(p) != p:
		return `name is not clean (no "./", "//" or trailing "/")`
	}
	for c := range strings.SplitSeq(p, "/") {
		if len(c) > maxComponentLen {
			return fmt.Sprintf("a path component is longer than %d bytes", maxComponentLen)
		}
		if strings.HasPrefix(c, TempPrefix) {
			return fmt.Sprintf("names starting with %q are reserved for temporary files", TempPrefix)
		}
	}
	return ""
}

// checkLinkTarget returns why target is not an acceptable target for a
// symlink at archive path link, or "". The target must be relative and clean,
// which leaves ".." only as leading components, and resolved from the
// link's directory it must stay inside the package directory (data/'s
// parent). Because every directory below data/ is a real directory and a
// clean target only descends after its leading "..", following any chain of
// such links from inside the package directory stays inside it.
func checkLinkTarget(link, target string, maxLen int) string {
	switch {
	case target == "":
		return "symlink target is empty"
	case len(target) > maxLen:
		return fmt.Sprintf("symlink target is longer than %d bytes", maxLen)
	case !utf8.ValidString(target) || strings.ContainsFunc(target, isControl):
		return fmt.Sprintf("symlink target %q contains invalid or control characters", target)
	case strings.HasPrefix(target, "/"):
		return fmt.Sprintf("symlink target %q is absolute", target)
	case path.Clean(target) != target:
		return fmt.Sprintf("symlink target %q is not clean", target)
	}
	if r := path.Join(path.Dir(link), target); r == ".." || strings.HasPrefix(r, "../") {
		return fmt.Sprintf("symlink target %q leaves the package directory", target)
	}
	return ""
}

// headerMode converts tar mode bits. File type bits, which some writers
// include, are ignored; any other unknown bit is refused.
func headerMode(hdr *tar.Header) (fs.FileMode, error) {
	const known = 0o7777 | 0o170000
	if hdr.Mode&^known != 0 {
		return 0, entryErr(hdr.Name, "mode %#o has unknown bits", hdr.Mode)
	}
	m := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// tarMode is the inverse of headerMode.
func tarMode(m fs.FileMode) int64 { return int64(UnixMode(m)) }

// UnixMode is m's permission and setuid/setgid/sticky bits as the octal
// number chmod(2) and tar use (0o4755), which fs.FileMode keeps elsewhere.
func UnixMode(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

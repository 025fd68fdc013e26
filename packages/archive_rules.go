package packages

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
)

// topFile checks manifest.toml or a hook: a regular file of bounded size.
func (k *checker) topFile(name string, typ EntryType, size int64, maxSize int64) error {
	if typ != TypeFile {
		return entryErr(name, "must be a regular file, not a %s", typ)
	}
	if size > maxSize {
		return &EntryError{Path: name, Reason: fmt.Sprintf("%d bytes is larger than the %d allowed", size, maxSize), Err: ErrTooLarge}
	}
	return nil
}

// hook checks a hook script: declared in [Hooks], present once.
func (k *checker) hook(name string, typ EntryType, size int64, i int, declared string) error {
	if declared == "" {
		return entryErr(name, "hook present but not declared in the manifest's [Hooks]")
	}
	if k.hooks[i] {
		return entryErr(name, "duplicate entry")
	}
	k.hooks[i] = true
	return k.topFile(name, typ, size, MaxHookSize)
}

// setManifest records the parsed manifest, which the rules for hooks and
// data entries need; it must be called before the second check.
func (k *checker) setManifest(m *Manifest) { k.c.Manifest = m }

// setDigest records the content digest of the regular file just checked.
func (k *checker) setDigest(d Digest) { k.c.Entries[len(k.c.Entries)-1].Digest = d }

// dataEntry checks an entry below data/ and appends it to c.Entries.
func (k *checker) dataEntry(name string, typ EntryType, hdr *tar.Header) error {
	if i, dup := k.paths[name]; dup {
		switch {
		case i != implicitDir:
			return entryErr(name, "duplicate entry")
		case typ != TypeDir:
			return entryErr(name, "is a %s, but earlier entries are inside it", typ)
		}
	}
	if err := k.parents(name); err != nil {
		return err
	}
	mode, err := headerMode(hdr)
	if err != nil {
		return err
	}
	e := Entry{Path: name, Type: typ, Mode: mode}
	switch typ {
	case TypeDir:
		err = k.dir(&e)
	case TypeFile:
		err = k.file(&e, hdr.Size)
	case TypeSymlink:
		err = k.symlink(&e, hdr.Linkname)
	case TypeHardlink:
		err = k.hardlink(&e, hdr.Linkname)
	}
	if err == nil {
		err = k.listed(&e)
	}
	if err != nil {
		return err
	}
	k.paths[name] = len(k.c.Entries)
	k.c.Entries = append(k.c.Entries, e)
	return nil
}

// parents records the directories above name as implicit directories and
// refuses an entry below an earlier symlink or file: extracting it would
// write through the symlink.
func (k *checker) parents(name string) error {
	for dir := path.Dir(name); dir != DataDir; dir = path.Dir(dir) {
		i, seen := k.paths[dir]
		if !seen {
			k.paths[dir] = implicitDir
			continue
		}
		if i == implicitDir || k.c.Entries[i].Type == TypeDir {
			return nil // its own parents were checked when it was recorded
		}
		return entryErr(name, "is below %q, which is a %s", dir, k.c.Entries[i].Type)
	}
	return nil
}

func (k *checker) dir(e *Entry) error {
	if e.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		return entryErr(e.Path, "setuid/setgid directories are not allowed")
	}
	return nil
}

func (k *checker) file(e *Entry, size int64) error {
	if e.Mode&fs.ModeSticky != 0 {
		return entryErr(e.Path, "the sticky bit is only allowed on directories")
	}
	if e.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 && !k.c.Manifest.MaySetuid(e.Path) {
		return entryErr(e.Path, "setuid/setgid bit set but the path is not declared in the manifest's [Files] setuid")
	}
	if size < 0 {
		return entryErr(e.Path, "negative size")
	}
	if size > k.lim.MaxFileSize {
		return &EntryError{Path: e.Path, Reason: fmt.Sprintf("%d bytes is larger than the %d allowed for one file", size, k.lim.MaxFileSize), Err: ErrTooLarge}
	}
	k.declared += size
	if k.declared > k.lim.MaxTotalSize {
		return &EntryError{Path: e.Path, Reason: fmt.Sprintf("files add up to more than the %d bytes allowed", k.lim.MaxTotalSize), Err: ErrTooLarge}
	}
	e.Size = size
	k.c.InstalledSize += size
	return nil
}

func (k *checker) symlink(e *Entry, target string) error {
	if reason := checkLinkTarget(e.Path, target, k.lim.MaxNameLen); reason != "" {
		return entryErr(e.Path, "%s", reason)
	}
	if k.c.Manifest.IsConfig(e.Path) || k.c.Manifest.MaySetuid(e.Path) {
		return entryErr(e.Path, "declared in the manifest's [Files] but a symlink")
	}
	e.Mode, e.Link = 0o777, target
	return nil
}

// hardlink resolves a hard link to an earlier regular file. The link shares
// the target's inode, so it takes its mode, size and digest; a setuid target
// must be declared under both names, and config files may not be linked
// (each is kept or replaced on its own when the user edited it).
func (k *checker) hardlink(e *Entry, target string) error {
	if reason := checkPath(target, k.lim.MaxNameLen); reason != "" {
		return entryErr(e.Path, "hard link target %q: %s", target, reason)
	}
	i, ok := k.paths[target]
	if !ok || i == implicitDir || k.c.Entries[i].Type != TypeFile {
		return entryErr(e.Path, "hard link to %q, which is not an earlier regular file of the archive", target)
	}
	t := k.c.Entries[i]
	m := k.c.Manifest
	if m.IsConfig(e.Path) || m.IsConfig(target) {
		return entryErr(e.Path, "config files declared in [Files] cannot be hard links")
	}
	if t.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 && !m.MaySetuid(e.Path) {
		return entryErr(e.Path, "hard link to setuid/setgid %q but the path is not declared in the manifest's [Files] setuid", target)
	}
	e.Mode, e.Size, e.Link, e.Digest = t.Mode, t.Size, target, t.Digest
	return nil
}

// finish checks what can only be known at the end: declared hooks and
// [Files] paths are present, and SumsFile lists no path the archive lacks.
func (k *checker) finish() (*Contents, error) {
	if k.count == 0 || k.c.Manifest == nil {
		return nil, entryErr("", "empty archive (no %s)", ManifestFile)
	}
	m := k.c.Manifest
	for i, h := range []string{m.Hooks.Install, m.Hooks.Remove} {
		if h != "" && !k.hooks[i] {
			return nil, entryErr(h, "declared in the manifest's [Hooks] but missing from the archive")
		}
	}
	for _, f := range []struct {
		field    string
		paths    []string
		hardlink bool // a hard link is a name of a regular file too
	}{{"config", m.Files.Config, false}, {"setuid", m.Files.Setuid, true}} {
		for _, p := range f.paths {
			if !k.isFile(p, f.hardlink) {
				return nil, entryErr(p, "declared in the manifest's [Files] %s but not a regular file of the archive", f.field)
			}
		}
	}
	if err := k.unlisted(); err != nil {
		return nil, err
	}
	return &k.c, nil
}

func (k *checker) isFile(p string, orHardlink bool) bool {
	i, ok := k.paths[p]
	if !ok || i == implicitDir {
		return false
	}
	t := k.c.Entries[i].Type
	return t == TypeFile || orHardlink && t == TypeHardlink
}

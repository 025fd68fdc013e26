package packages

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// ExtractOptions says where and how Extract stages an archive.
type ExtractOptions struct {
	Limits Limits // zero fields mean DefaultLimits
	Dest   string // root-relative dir the data/ tree goes to, e.g. "opt/packets/htop/data"
	Tag    string // unique per extraction, e.g. "tx42-3"; part of every temp name: 1-32 of [A-Za-z0-9_-]
	// TrustSums takes the digests of the files the archive's SumsFile
	// lists without hashing them. Set it only for an archive whose own
	// digest matched a signed index: its signer ran `repo index`, which
	// refuses an archive whose list does not match its files (Inspect).
	// Unset, a listed file whose content differs is refused. The installer
	// hashed each blob against the index in the same command (fetch.
	// FetchAll with VerifyCached) and reads it back from root's cache; the
	// zstd frames' checksums catch damage in between.
	TrustSums bool
	// Parallel says that the caller runs other extractions at the same
	// time, about one per core: this one then decompresses in the calling
	// goroutine, rather than a block ahead in another goroutine, which
	// then only contends for the cores (3% more CPU for 200 packages on
	// two cores; 10% less time for one package alone).
	Parallel bool
}

// StagedFile is one data entry staged by Extract. Final and Temp are
// root-relative; Temp is "" for directories, which are made real directly,
// and for every entry of a tree staged whole (see Staged.Top).
type StagedFile struct {
	Entry
	Final string
	Temp  string
	MTime time.Time // a regular file's modification time once written: Publish's rename keeps it
	// ModeSet says that Extract made this directory, in a tree staged
	// whole, with its final mode: Publish need not give it (2,400 chmods of
	// a cold apply's commit).
	ModeSet bool
}

// Staged is the result of Extract: every data entry staged, ready to
// Publish or Discard. Files[i].Entry is Contents.Entries[i].
//
// Where Dest exists, each non-directory is staged under its own temporary
// name beside its final one (StagedFile.Temp), and Publish renames each.
// Where Dest or one of its parents does not exist yet, the tree is staged
// whole: Top is the topmost missing directory, and everything from Top down
// is made under its final name below TopTemp (TempName(Top, tag, 0)), a
// hidden sibling of Top, so that Publish puts it all in place with one
// rename (a fresh install of a package with thousands of files).
type Staged struct {
	Contents *Contents    // the validated manifest, hooks and entries, as Inspect returns them
	Files    []StagedFile // in archive order
	NewDirs  []string     // dirs Extract created (root-relative, final names), parents first
	Dest     string       // ExtractOptions.Dest: every Final is below it
	Top      string       // when staged whole: the topmost new directory (Dest or a parent)
	TopTemp  string       // when staged whole: where Top is staged
}

// TempName is the temporary name under which Extract stages final: a short
// hidden name in the same directory, so that publishing is a rename within
// one filesystem. It is deterministic, so that recovery after a crash can
// find the temporaries of transaction tag; archives cannot contain names
// starting with TempPrefix.
func TempName(final, tag string, n int) string {
	return path.Join(path.Dir(final), TempPrefix+tag+"-"+strconv.Itoa(n))
}

// Extract validates the archive in r with the same code as Inspect while it
// stages the data/ tree below opt.Dest in root, each entry as soon as it
// passed every rule that can be checked at that point, and nothing under
// a name anyone else uses: where Dest exists, directories are created for
// real (new ones recorded in NewDirs), regular files are written to
// TempName temporaries created with O_EXCL and given their mode explicitly
// (setuid bits after the content), symlinks and hard links are made at
// temporaries too (a hard link to the earlier file's temporary); where it
// does not, the whole tree is made under final names below a hidden
// sibling of its topmost new directory (see Staged). Nothing is fsynced:
// make the batch durable with SyncFS, then Publish.
//
// An existing non-directory where the archive needs a directory is an error.
// On any error Extract discards everything it staged and created, so a
// hostile archive leaves only what existed before.
func Extract(r io.Reader, root *os.Root, opt ExtractOptions) (*Staged, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	x := &extractor{
		root: root, dest: opt.Dest, tag: opt.Tag, st: &Staged{},
		dirs: map[string]bool{}, modes: map[string]fs.FileMode{}, made: map[string]string{},
	}
	buf := getBuf()
	defer putBuf(buf)
	x.buf = buf[:]
	x.st.Dest = opt.Dest
	err := x.makeDest()
	var c *Contents
	if err == nil {
		x.below = newDirs(root, x.at(opt.Dest))
		x.below.umask = currentUmask() // once per archive: Publish creates nothing
		c, err = readArchive(r, readOptions{lim: opt.Limits, trust: opt.TrustSums, ahead: !opt.Parallel}, x)
		x.below.close()
	}
	if err != nil {
		if derr := x.st.Discard(root); derr != nil {
			err = errors.Join(err, fmt.Errorf("discard staged files: %w", derr))
		}
		return nil, err
	}
	for i := range x.st.Files {
		x.st.Files[i].Entry = c.Entries[i] // with the digests, known only after each file
	}
	x.st.Contents = c
	return x.st, nil
}

func (o *ExtractOptions) validate() error {
	if o.Dest == "" || !fs.ValidPath(o.Dest) {
		return fmt.Errorf("extract: destination %q is not a clean root-relative path", o.Dest)
	}
	if o.Tag == "" || len(o.Tag) > 32 || strings.ContainsFunc(o.Tag, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-'
	}) {
		return fmt.Errorf("extract: tag %q must be 1-32 of [A-Za-z0-9_-]", o.Tag)
	}
	return nil
}

// extractor is the sink that stages entries into the root.
type extractor struct {
	root  *os.Root
	dest  string
	tag   string
	st    *Staged
	dirs  map[string]bool        // final root-relative directories known to be real
	modes map[string]fs.FileMode // of those, the ones Extract made below Dest: the mode they were made with
	made  map[string]string      // archive path of a regular file -> where it was made
	n     int                    // temporaries made
	buf   []byte
	below *dirs  // the tree below dest, where it is staged
	top   string // Staged.Top: "" unless the tree is staged whole
	stage string // Staged.TopTemp: where top is staged
	exact bool   // the tree is staged whole below a top that makes its directories exactly as asked
}

// makeDest creates Dest and its missing parents; from the first missing
// one on, the tree is staged whole. Existing parents may be symlinks (an
// administrator's /opt -> /srv/opt); os.Root keeps them inside the root.
func (x *extractor) makeDest() error {
	dir := ""
	for c := range strings.SplitSeq(x.dest, "/") {
		dir = path.Join(dir, c)
		if x.top == "" {
			fi, err := x.root.Stat(dir)
			switch {
			case err == nil && fi.IsDir():
				continue
			case err == nil:
				return fmt.Errorf("extract: %s exists and is not a directory", dir)
			case !errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("extract: %w", err)
			}
			x.top, x.stage = dir, TempName(dir, x.tag, 0)
		}
		if err := x.mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
	}
	x.dirs[x.dest] = true
	// A new directory inherits from its parent a setgid bit (which mkdir's
	// chmod takes off the top) or a default ACL, and nothing else.
	x.exact = x.top != "" && noDefaultACL(x.root, x.stage)
	return nil
}

// mkdir makes dir, of Dest or its parents, with exactly perm.
func (x *extractor) mkdir(dir string, perm fs.FileMode) error {
	at := x.at(dir)
	if err := x.root.Mkdir(at, perm); err != nil {
		return err
	}
	if dir == x.top { // recorded as soon as it exists, so that Discard removes it
		x.st.Top, x.st.TopTemp = x.top, x.stage
	}
	x.st.NewDirs = append(x.st.NewDirs, dir)
	return x.root.Chmod(at, perm) // the umask must not matter
}

// at is where the entry of root-relative final path p is made: in the
// staged tree when it is staged whole, else p itself (a directory; a file
// goes to a TempName beside it).
func (x *extractor) at(p string) string {
	if x.top == "" || !within(p, x.top) {
		return p
	}
	return x.stage + p[len(x.top):]
}

// final is where archive path p is installed.
func (x *extractor) final(p string) string {
	rest := p[len(DataDir)+1:]
	if x.dest == "." {
		return rest
	}
	return x.dest + "/" + rest
}

// ensureDir makes dir, below Dest, a real directory: an existing one must
// not be a symlink, so that nothing is ever written through one.
// New directories get perm, and at least owner rwx until Publish gives
// directories from the archive their own mode.
func (x *extractor) ensureDir(dir string, perm fs.FileMode) error {
	if x.dirs[dir] {
		return nil
	}
	if err := x.ensureDir(path.Dir(dir), 0o755); err != nil {
		return err
	}
	kind, err := fs.FileMode(0), fs.ErrNotExist // nothing exists in a tree staged whole but what Extract made
	if x.top == "" {
		kind, err = x.below.kind(dir)
	}
	switch {
	case err == nil && kind == fs.ModeDir:
	case err == nil:
		return fmt.Errorf("%s exists and is not a directory", dir)
	case errors.Is(err, fs.ErrNotExist):
		if err := x.below.mkdir(x.at(dir), perm|0o700); err != nil {
			return err
		}
		x.modes[dir] = perm | 0o700
		x.st.NewDirs = append(x.st.NewDirs, dir)
	default:
		return err
	}
	x.dirs[dir] = true
	return nil
}

// entry stages one data entry (the sink method readArchive calls).
func (x *extractor) entry(e *Entry, content io.Reader) error {
	final := x.final(e.Path)
	if e.Type == TypeDir {
		if err := x.ensureDir(final, e.Mode.Perm()); err != nil {
			return err
		}
		made, ok := x.modes[final]
		x.st.Files = append(x.st.Files, StagedFile{Entry: *e, Final: final, ModeSet: x.exact && ok && made == e.Mode})
		return nil
	}
	dir := path.Dir(final)
	if err := x.ensureDir(dir, 0o755); err != nil {
		return err
	}
	temp, at := "", x.at(final)
	if x.top == "" {
		x.n++
		temp = TempName(final, x.tag, x.n)
		at = temp
	}
	var err error
	switch e.Type {
	case TypeFile:
		return x.file(e, final, temp, at, content)
	case TypeSymlink:
		err = x.below.symlink(e.Link, at)
	case TypeHardlink:
		err = x.root.Link(x.made[e.Link], at) // the checker made sure e.Link is an earlier file
	}
	if err != nil {
		return err
	}
	x.st.Files = append(x.st.Files, StagedFile{Entry: *e, Final: final, Temp: temp})
	return nil
}

// file writes a regular file at at (its temporary, or its place in the
// tree staged whole), with its mode.
func (x *extractor) file(e *Entry, final, temp, at string, content io.Reader) error {
	created, mtime, err := x.below.create(at, e.Mode, content, x.buf)
	if created { // recorded as soon as it exists, so that Discard removes it
		x.st.Files = append(x.st.Files, StagedFile{Entry: *e, Final: final, Temp: temp, MTime: mtime})
		x.made[e.Path] = at
	}
	return err
}

package packages

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// srcEntry is one entry of the source data tree.
type srcEntry struct {
	path  string // archive path, no trailing slash
	hdr   *tar.Header
	inode inodeKey
	multi bool // a regular file with more than one link
}

// sourceData walks data/ without following symlinks and returns its
// entries' headers in archive order: sorted by path, the files that share an
// inode turned into hard links to the first of them. A missing data/ is an
// empty package.
func sourceData(src *os.Root) ([]*tar.Header, error) {
	fi, err := src.Lstat(DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", DataDir)
	}
	var entries []srcEntry
	err = fs.WalkDir(src.FS(), DataDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := src.Lstat(p)
		if err != nil {
			return err
		}
		hdr, err := sourceHeader(src, p, fi)
		if err != nil {
			return err
		}
		key, multi := inodeOf(fi)
		entries = append(entries, srcEntry{path: p, hdr: hdr, inode: key, multi: multi && fi.Mode().IsRegular()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b srcEntry) int { return strings.Compare(a.path, b.path) })
	first := map[inodeKey]string{}
	hdrs := make([]*tar.Header, len(entries))
	for i, e := range entries {
		hdrs[i] = e.hdr
		if !e.multi {
			continue
		}
		if t, ok := first[e.inode]; ok {
			e.hdr.Typeflag, e.hdr.Linkname, e.hdr.Size = tar.TypeLink, t, 0
			continue
		}
		first[e.inode] = e.path
	}
	return hdrs, nil
}

// sourceHeader makes the deterministic tar header of one source entry.
func sourceHeader(src *os.Root, p string, fi fs.FileInfo) (*tar.Header, error) {
	mode := fi.Mode()
	hdr := &tar.Header{Name: p, Mode: tarMode(mode), ModTime: epoch, Format: tar.FormatPAX}
	switch {
	case mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
	case mode.IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case mode&fs.ModeSymlink != 0:
		target, err := src.Readlink(p)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	default:
		return nil, fmt.Errorf("%s: a %s cannot be packaged (only directories, regular files and symlinks)", p, fileKind(mode))
	}
	return hdr, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0:
		return "device node"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// archiveWriter writes the tar stream of a build, checking each header with
// the same checker as the reader before it is written.
type archiveWriter struct {
	k       *checker
	src     *os.Root
	cw      countingWriter
	tw      *tar.Writer
	buf     []byte
	digests map[string]Digest // of the regular files, as sourceSums read them
}

func (bw *archiveWriter) writeAll(m *Manifest, manifest, sums []byte, hooks map[string][]byte, data []*tar.Header) error {
	if err := bw.small(ManifestFile, manifest); err != nil {
		return err
	}
	bw.k.setManifest(m)
	if sums != nil {
		// The list goes through the reader's parser, so that the builder
		// refuses what the reader would refuse.
		if err := bw.small(SumsFile, sums); err != nil {
			return err
		}
		listed, err := parseSums(sums, bw.k.lim)
		if err != nil {
			return err
		}
		bw.k.setSums(listed)
	}
	for _, h := range []string{InstallHook, RemoveHook} {
		if b, ok := hooks[h]; ok {
			if err := bw.small(h, b); err != nil {
				return err
			}
		}
	}
	bw.buf = make([]byte, 64<<10)
	for _, hdr := range data {
		if err := bw.header(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := bw.content(hdr); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
	}
	_, err := bw.k.finish()
	return err
}

func (bw *archiveWriter) header(hdr *tar.Header) error {
	if _, err := bw.k.check(hdr); err != nil {
		return err
	}
	return bw.tw.WriteHeader(hdr)
}

// small writes manifest.toml or a hook, mode 0644.
func (bw *archiveWriter) small(name string, b []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
	if err := bw.header(hdr); err != nil {
		return err
	}
	_, err := bw.tw.Write(b)
	return err
}

// content copies a regular file, which must still have the size and the
// digest it had when the tree was walked and listed.
func (bw *archiveWriter) content(hdr *tar.Header) error {
	d, n, err := copyFile(bw.src, hdr, bw.tw, bw.buf)
	if err != nil {
		return err
	}
	if n != hdr.Size || d != bw.digests[hdr.Name] {
		return errChanged
	}
	return nil
}

// sourceSums hashes the regular files of data and returns their digests
// by path and, in order, as a SumsFile.
func sourceSums(src *os.Root, data []*tar.Header) (map[string]Digest, []byte, error) {
	var (
		paths   []string
		digests []Digest
		byPath  = map[string]Digest{}
		buf     = make([]byte, 64<<10)
	)
	for _, hdr := range data {
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		d, n, err := copyFile(src, hdr, io.Discard, buf)
		if err == nil && n != hdr.Size {
			err = errChanged
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		paths, digests = append(paths, hdr.Name), append(digests, d)
		byPath[hdr.Name] = d
	}
	return byPath, formatSums(paths, digests), nil
}

// copyFile copies the regular file hdr names to w and returns its digest
// and how many bytes it holds, up to one more than hdr.Size (a file that
// grew).
func copyFile(src *os.Root, hdr *tar.Header, w io.Writer, buf []byte) (Digest, int64, error) {
	var d Digest
	f, err := src.Open(hdr.Name)
	if err != nil {
		return d, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(f, hdr.Size), buf)
	if err != nil {
		return d, n, err
	}
	if more, _ := f.Read(buf[:1]); more > 0 {
		n++
	}
	h.Sum(d[:0])
	return d, n, nil
}

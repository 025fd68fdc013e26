package packages

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// sink receives each validated data entry of an archive being read.
type sink interface {
	// entry is called once per data entry, in archive order, after the
	// entry passed every rule that can be checked at that point. content
	// holds a regular file's bytes and is nil for other types; the sink
	// need not read all of it. e is valid only during the call, and a
	// regular file's Digest is set before it only when the archive has a
	// SumsFile (and checked against the content after it, unless trusted).
	entry(e *Entry, content io.Reader) error
}

// Inspect reads and validates a whole archive without writing anything, and
// returns what it holds. Every refusal is an *EntryError naming the entry; a
// zstd bomb or an oversize archive wraps ErrTooLarge. The caller is expected
// to have checked the archive's size and digest against the signed index
// first (verify, then parse).
func Inspect(r io.Reader, lim Limits) (*Contents, error) {
	return readArchive(r, readOptions{lim: lim, ahead: true}, nil)
}

// reader streams one archive: zstd, a size cap, tar, and the checker.
type reader struct {
	k       *checker
	s       sink
	br      boundedReader
	tr      tarReader
	cr      contentReader
	trust   bool // take a regular file's digest from SumsFile unchecked
	buf     []byte
	sum     []byte
	lastEnd int64  // stream offset just after the last entry's data
	last    string // the last entry's name, for errors between entries
}

// decoders keeps zstd decoders with the default window limit between
// archives, one pool per concurrency (index 0: decoding in the reader's
// goroutine; 1: one block ahead in another). A decoder allocates a history
// ring as large as the archive's window (8 MiB for most archives, however
// small); making and zeroing one per archive was a tenth of the CPU of
// applying 200 packages. A decoder goes back only after Reset(nil), when
// no goroutine of its last stream is left, so one the pool drops costs
// nothing but memory.
var decoders [2]sync.Pool

// bufs keeps the 64 KiB buffers through which archives are read and
// files written, two per archive: allocating them afresh was an eighth of
// what applying 200 packages allocated, each page of it a page fault.
var bufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

func getBuf() *[64 << 10]byte  { return bufs.Get().(*[64 << 10]byte) }
func putBuf(b *[64 << 10]byte) { bufs.Put(b) }

// readOptions says how readArchive reads.
type readOptions struct {
	lim Limits
	// trust takes the digests SumsFile lists without hashing the files
	// (ExtractOptions.TrustSums).
	trust bool
	// ahead decompresses one block ahead of the tar reader in another
	// goroutine, so that decompression overlaps writing files: worth it
	// for an archive read alone, not when every core is already reading
	// one (ExtractOptions.Parallel), where the handing over only costs.
	ahead bool
}

func (o readOptions) pool() *sync.Pool {
	if o.lim.MaxWindow != DefaultLimits().MaxWindow {
		return nil
	}
	if o.ahead {
		return &decoders[1]
	}
	return &decoders[0]
}

func getDecoder(r io.Reader, o readOptions) (*zstd.Decoder, error) {
	if pool := o.pool(); pool != nil {
		if zr, ok := pool.Get().(*zstd.Decoder); ok {
			if err := zr.Reset(r); err == nil {
				return zr, nil
			}
			zr.Close()
		}
	}
	concurrency := 1
	if o.ahead {
		concurrency = 2 // more does not help: the tar reader is the bottleneck
	}
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(o.lim.MaxWindow), zstd.WithDecoderConcurrency(concurrency))
}

func putDecoder(zr *zstd.Decoder, o readOptions) {
	pool := o.pool()
	if pool == nil || zr.Reset(nil) != nil {
		zr.Close()
		return
	}
	pool.Put(zr)
}

// readArchive is the one implementation behind Inspect and Extract. A nil
// sink only validates.
func readArchive(r io.Reader, o readOptions, s sink) (*Contents, error) {
	k := newChecker(o.lim)
	o.lim = k.lim
	zr, err := getDecoder(r, o)
	if err != nil {
		return nil, fmt.Errorf("zstd reader: %w", err)
	}
	defer putDecoder(zr, o)
	buf := getBuf()
	defer putBuf(buf)
	rd := &reader{k: k, s: s, br: boundedReader{r: zr, max: k.lim.MaxTotalSize}, trust: o.trust, buf: buf[:]}
	rd.cr.h = sha256.New()
	rd.tr.r = &rd.br
	for {
		hdr, err := rd.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, rd.streamErr(rd.last, "reading the next header", err)
		}
		if err := rd.entry(hdr); err != nil {
			return nil, err
		}
	}
	if err := rd.end(); err != nil {
		return nil, err
	}
	return k.finish()
}

// entry validates one header and consumes its content.
func (rd *reader) entry(hdr *tar.Header) error {
	start := rd.br.n
	rd.last = hdr.Name
	kind, err := rd.k.check(hdr)
	if err != nil {
		return err
	}
	rd.lastEnd = start
	if hdr.Typeflag == tar.TypeReg {
		rd.lastEnd += (hdr.Size + 511) &^ 511
	}
	switch kind {
	case kindManifest:
		b, err := rd.small(hdr)
		if err != nil {
			return err
		}
		m, err := ParseManifest(b)
		if err != nil {
			return wrapEntryErr(ManifestFile, err)
		}
		rd.k.setManifest(m)
	case kindSums:
		b, err := rd.small(hdr)
		if err != nil {
			return err
		}
		sums, err := parseSums(b, rd.k.lim)
		if err != nil {
			return err
		}
		rd.k.setSums(sums)
	case kindInstallHook:
		b, err := rd.small(hdr)
		rd.k.c.InstallHook = b
		return err
	case kindRemoveHook:
		b, err := rd.small(hdr)
		rd.k.c.RemoveHook = b
		return err
	case kindData:
		return rd.data(&rd.k.c.Entries[len(rd.k.c.Entries)-1])
	}
	return nil
}

// small reads a bounded top-level file (manifest, SumsFile, hook) into
// memory, growing as bytes arrive rather than trusting the header's size:
// a truncated archive that announces a 64 MiB list costs what it holds.
func (rd *reader) small(hdr *tar.Header) ([]byte, error) {
	b, err := io.ReadAll(&rd.tr)
	if err == nil && int64(len(b)) != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, rd.streamErr(hdr.Name, "reading", err)
	}
	return b, nil
}

// data hands a data entry to the sink and, for a regular file, makes sure
// that all of its bytes were read and, unless its listed digest is
// trusted, hashed: to set its digest, or to check the one listed.
func (rd *reader) data(e *Entry) error {
	if e.Type != TypeFile {
		if rd.s == nil {
			return nil
		}
		return wrapEntryErr(e.Path, rd.s.entry(e, nil))
	}
	listed := rd.k.sums != nil
	rd.cr.reset(&rd.tr, !listed || !rd.trust)
	if rd.s != nil {
		if err := rd.s.entry(e, &rd.cr); err != nil {
			if rd.cr.err != nil && rd.cr.err != io.EOF {
				return rd.streamErr(e.Path, "reading", rd.cr.err)
			}
			return wrapEntryErr(e.Path, err)
		}
	}
	for rd.cr.err == nil {
		_, _ = rd.cr.Read(rd.buf)
	}
	if rd.cr.err != io.EOF {
		return rd.streamErr(e.Path, "reading", rd.cr.err)
	}
	if rd.cr.n != e.Size {
		return entryErr(e.Path, "truncated: %d of %d bytes", rd.cr.n, e.Size)
	}
	if !rd.cr.hashing {
		return nil
	}
	var d Digest
	rd.sum = rd.cr.h.Sum(rd.sum[:0]) // into a reused slice: d[:0] would escape, one allocation per file
	copy(d[:], rd.sum)
	switch {
	case !listed:
		rd.k.setDigest(d)
	case d != e.Digest:
		return entryErr(e.Path, "content does not match its digest in %s (%s, listed %s)", SumsFile, d.Short(), e.Digest.Short())
	}
	return nil
}

// end checks what follows the last entry: the tar end-of-archive marker (two
// zero blocks; without it the archive may have lost entries), then only zero
// padding up to the end of the zstd stream. Several zstd frames are one
// stream, as for the zstd tool; non-zero bytes or anything that is not zstd
// after the tar end are refused, so that an archive means one thing only.
func (rd *reader) end() error {
	if rd.k.count == 0 {
		return entryErr("", "empty archive (no %s)", ManifestFile)
	}
	if rd.br.n-rd.lastEnd != 2*512 {
		return &EntryError{Reason: fmt.Sprintf("truncated after entry %q: no tar end-of-archive marker", rd.last), Err: io.ErrUnexpectedEOF}
	}
	for {
		n, err := rd.br.Read(rd.buf)
		for _, c := range rd.buf[:n] {
			if c != 0 {
				return entryErr("", "garbage after the end of the tar archive")
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return rd.streamErr("", "after the end of the tar archive", err)
		}
	}
}

// streamErr explains an error of the compressed or tar stream met while
// doing something with entry p ("" for the stream as a whole).
func (rd *reader) streamErr(p, doing string, err error) error {
	var reason string
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrFrameSizeExceeded):
		reason = fmt.Sprintf("archive decompresses to more than the %d bytes allowed (zstd bomb?)", rd.k.lim.MaxTotalSize)
		err = errors.Join(ErrTooLarge, err)
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		reason = fmt.Sprintf("zstd window larger than the %d bytes allowed", rd.k.lim.MaxWindow)
		err = errors.Join(ErrTooLarge, err)
	case errors.Is(err, zstd.ErrMagicMismatch):
		reason = doing + ": not zstd data"
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = doing + ": truncated archive"
	case errors.Is(err, tar.ErrHeader):
		reason = doing + ": corrupt tar header"
		if why, ok := strings.CutPrefix(err.Error(), tar.ErrHeader.Error()+": "); ok {
			reason += " (" + why + ")" // tarReader says what is wrong
		}
	default:
		reason = doing + ": " + err.Error()
	}
	return &EntryError{Path: p, Reason: reason, Err: err}
}

// boundedReader counts the decompressed bytes and fails once they pass max.
type boundedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, ErrTooLarge
	}
	// Read at most one byte past the limit, enough to know it was passed.
	if rest := b.max - b.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n, ErrTooLarge
	}
	return n, err
}

// contentReader counts and, when hashing, hashes a regular file's bytes
// as they are read, and remembers the first error of the stream (as opposed
// to the sink's).
type contentReader struct {
	r       io.Reader
	h       hash.Hash
	hashing bool
	n       int64
	err     error
}

func (c *contentReader) reset(r io.Reader, hashing bool) {
	c.r, c.n, c.err, c.hashing = r, 0, nil, hashing
	if hashing {
		c.h.Reset()
	}
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if c.hashing {
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	c.err = err
	return n, err
}

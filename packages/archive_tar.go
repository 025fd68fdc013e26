package packages

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// tarReader reads the tar stream inside an archive: POSIX ustar headers,
// with pax extended headers ('x') for what they cannot hold, and GNU
// headers with their long names ('L', 'K'), which GNU tar writes by
// default. It returns what archive/tar's Reader would for the same bytes
// (FuzzTarReader compares the two), and refuses more: V7 and star
// headers, a numeric field with anything but spaces or NULs after its
// digits, a pax header beside another meta header before one entry, two
// GNU long names or two long links for one entry, a size within a block
// of the largest int64, and a GNU header whose time fields do not parse.
// It exists for speed: archive/tar's format detection
// (which scans every header for non-ASCII bytes a rune at a time) and its
// allocations cost more than a twentieth of a cold apply's CPU; this
// reader makes one string per entry and reuses its Header.
//
// A header it returns is valid until the next call to Next.
type tarReader struct {
	r    io.Reader
	hdr  tar.Header
	blk  [blockSize]byte
	left int64 // bytes of the current entry's data not read yet
	pad  int64 // zero padding after them
	err  error // sticky: once Next fails, it fails again
}

const blockSize = 512

// maxMetaSize bounds the data of a pax or GNU long-name header, as
// archive/tar does.
const maxMetaSize = 1 << 20

// Header layout, shared by ustar and GNU (offsets into a block).
const (
	offName, lenName         = 0, 100
	offMode, lenMode         = 100, 8
	offUID, lenUID           = 108, 8
	offGID, lenGID           = 116, 8
	offSize, lenSize         = 124, 12
	offMTime, lenMTime       = 136, 12
	offChksum, lenChksum     = 148, 8
	offType                  = 156
	offLink, lenLink         = 157, 100
	offMagic, lenMagic       = 257, 8 // magic and version
	offDevMajor, lenDevMajor = 329, 8
	offDevMinor, lenDevMinor = 337, 8
	offPrefix, lenPrefix     = 345, 155 // ustar; GNU keeps times there
	offATime, lenATime       = 345, 12  // GNU
	offCTime, lenCTime       = 357, 12  // GNU
	offStar                  = 508      // star's trailer "tar\x00"
)

// Next skips what is left of the current entry and returns the next one;
// io.EOF after the two zero blocks that end an archive. Errors about the
// headers themselves wrap tar.ErrHeader; a stream that ends inside a block
// or an entry's data is io.ErrUnexpectedEOF; a stream that ends cleanly
// between two entries is io.EOF too (the caller checks the end marker).
func (t *tarReader) Next() (*tar.Header, error) {
	if t.err != nil {
		return nil, t.err
	}
	hdr, err := t.next()
	t.err = err
	return hdr, err
}

func (t *tarReader) next() (*tar.Header, error) {
	var (
		pax                map[string]string
		longName, longLink string
		meta               byte // the meta header before this one: 'x', 'L', 'K' or 0
		gnu                byte // the GNU long names and links seen for this entry
	)
	for {
		if err := t.skip(); err != nil {
			return nil, err
		}
		format, err := t.readBlock()
		if err != nil {
			return nil, err
		}
		h := &t.hdr
		*h = tar.Header{Typeflag: t.blk[offType], Format: format}
		if err := t.parse(h, format); err != nil {
			return nil, err
		}
		t.left = h.Size // a meta header's data
		switch h.Typeflag {
		case tar.TypeXHeader, tar.TypeXGlobalHeader:
			if meta != 0 {
				return nil, headerErr("a pax header after another meta header")
			}
			if pax, err = t.readPAX(); err != nil {
				return nil, err
			}
			if h.Typeflag == tar.TypeXGlobalHeader { // an entry of its own, which the checker refuses
				if err := mergePAX(h, pax); err != nil {
					return nil, err
				}
				*h = tar.Header{Name: h.Name, Typeflag: h.Typeflag, PAXRecords: h.PAXRecords, Format: tar.FormatPAX}
				return h, nil
			}
			meta = h.Typeflag
			continue
		case tar.TypeGNULongName, tar.TypeGNULongLink:
			bit := byte(1) << (h.Typeflag - tar.TypeGNULongLink) // 'K' 1, 'L' 2
			if meta == tar.TypeXHeader || gnu&bit != 0 {
				return nil, headerErr("a GNU long name after a pax header or another of its kind")
			}
			b, err := t.readMeta()
			if err != nil {
				return nil, err
			}
			if h.Typeflag == tar.TypeGNULongName {
				longName = cstring(b)
			} else {
				longLink = cstring(b)
			}
			meta, gnu = h.Typeflag, gnu|bit
			continue
		}
		if err := mergePAX(h, pax); err != nil {
			return nil, err
		}
		if longName != "" {
			h.Name = longName
		}
		if longLink != "" {
			h.Linkname = longLink
		}
		if h.Typeflag == 0 { // the old regular file type (tar.TypeRegA)
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(h.Name, "/") {
				h.Typeflag = tar.TypeDir // legacy archives mark directories so
			}
		}
		if h.Size < 0 || h.Size > math.MaxInt64-blockSize {
			return nil, headerErr(fmt.Sprintf("size %d out of range", h.Size))
		}
		t.left = h.Size
		if headerOnly(h.Typeflag) {
			t.left = 0
		}
		t.pad = -t.left & (blockSize - 1)
		return h, nil
	}
}

// Read reads the current entry's data.
func (t *tarReader) Read(p []byte) (int, error) {
	if int64(len(p)) > t.left {
		p = p[:t.left]
	}
	var (
		n   int
		err error
	)
	if len(p) > 0 {
		n, err = t.r.Read(p)
		t.left -= int64(n)
	}
	switch {
	case err == io.EOF && t.left > 0:
		return n, io.ErrUnexpectedEOF
	case err == nil && t.left == 0:
		return n, io.EOF
	}
	return n, err
}

// skip discards the rest of the current entry and its padding.
func (t *tarReader) skip() error {
	for _, n := range [2]int64{t.left, t.pad} { // apart: their sum could overflow
		for n > 0 {
			m, err := io.ReadFull(t.r, t.blk[:min(n, blockSize)])
			n -= int64(m)
			if err != nil {
				return noEOF(err)
			}
		}
	}
	t.left, t.pad = 0, 0
	return nil
}

// readBlock reads the next header block and checks its checksum and
// format; io.EOF after two zero blocks.
func (t *tarReader) readBlock() (tar.Format, error) {
	b := t.blk[:]
	if _, err := io.ReadFull(t.r, b); err != nil {
		return 0, err // io.EOF: the stream ended between two entries
	}
	if isZero(b) {
		if _, err := io.ReadFull(t.r, b); err != nil {
			return 0, err
		}
		if isZero(b) {
			return 0, io.EOF
		}
		return 0, headerErr("a zero block followed by a header")
	}
	want, ok := octal(b[offChksum : offChksum+lenChksum])
	if !ok {
		return 0, headerErr("checksum is not an octal number")
	}
	var unsigned, signed int64
	for i, c := range b {
		if i >= offChksum && i < offChksum+lenChksum {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if want != unsigned && want != signed {
		return 0, headerErr("checksum mismatch")
	}
	switch magic := string(b[offMagic : offMagic+lenMagic]); {
	case magic[:6] == "ustar\x00" && string(b[offStar:]) == "tar\x00":
		return 0, headerErr("star headers are not supported")
	case magic[:6] == "ustar\x00":
		return tar.FormatUSTAR, nil
	case magic == "ustar  \x00":
		return tar.FormatGNU, nil
	}
	return 0, headerErr("not a ustar, pax or GNU tar header")
}

// parse reads the fields of the block in t.blk into h; every numeric
// field must parse, as archive/tar requires.
func (t *tarReader) parse(h *tar.Header, format tar.Format) error {
	b := t.blk[:]
	var bad bool
	num := func(off, n int) int64 {
		v, ok := numeric(b[off : off+n])
		bad = bad || !ok
		return v
	}
	h.Mode = num(offMode, lenMode)
	h.Uid = int(num(offUID, lenUID))
	h.Gid = int(num(offGID, lenGID))
	h.Size = num(offSize, lenSize)
	num(offMTime, lenMTime) // checked, not kept: archives carry no times that matter
	num(offDevMajor, lenDevMajor)
	num(offDevMinor, lenDevMinor)
	if format == tar.FormatGNU {
		// GNU keeps access and change times where ustar has its prefix;
		// archive/tar reads a prefix there when they do not parse.
		for _, f := range [][2]int{{offATime, lenATime}, {offCTime, lenCTime}} {
			if b[f[0]] != 0 {
				num(f[0], f[1])
			}
		}
	}
	if bad {
		return headerErr("a numeric field is not a number")
	}
	h.Name = cstring(b[offName : offName+lenName])
	h.Linkname = cstring(b[offLink : offLink+lenLink])
	if format == tar.FormatUSTAR {
		if p := b[offPrefix : offPrefix+lenPrefix]; p[0] != 0 {
			h.Name = cstring(p) + "/" + h.Name
		}
	}
	return nil
}

// readMeta reads the data of a pax or GNU long-name header.
func (t *tarReader) readMeta() ([]byte, error) {
	if t.left > maxMetaSize {
		return nil, headerErr(fmt.Sprintf("a meta header of %d bytes, more than the %d allowed", t.left, maxMetaSize))
	}
	b := make([]byte, t.left)
	if _, err := io.ReadFull(t, b); err != nil {
		return nil, noEOF(err)
	}
	t.pad = -int64(len(b)) & (blockSize - 1)
	return b, nil
}

// readPAX reads and parses the records of a pax header.
func (t *tarReader) readPAX() (map[string]string, error) {
	b, err := t.readMeta()
	if err != nil {
		return nil, err
	}
	recs := map[string]string{}
	for s := string(b); s != ""; {
		k, v, rest, ok := paxRecord(s)
		if !ok {
			return nil, headerErr("malformed pax record")
		}
		recs[k] = v
		s = rest
	}
	return recs, nil
}

// paxRecord splits off the first record of s, "<length> <key>=<value>\n",
// the length counting the whole record, with archive/tar's rules.
func paxRecord(s string) (k, v, rest string, ok bool) {
	nStr, after, ok := strings.Cut(s, " ")
	if !ok {
		return "", "", "", false
	}
	n, err := strconv.ParseInt(nStr, 10, 0)
	if err != nil || n < 5 || n > int64(len(s)) {
		return "", "", "", false
	}
	n -= int64(len(nStr) + 1) // from an index in s to one in after
	if n <= 0 || after[n-1] != '\n' {
		return "", "", "", false
	}
	k, v, ok = strings.Cut(after[:n-1], "=")
	if !ok || k == "" {
		return "", "", "", false
	}
	switch k {
	case "path", "linkpath", "uname", "gname":
		ok = !strings.Contains(v, "\x00")
	default:
		ok = !strings.Contains(k, "\x00")
	}
	return k, v, after[n:], ok
}

// mergePAX applies the records of a pax header to the header after it, as
// archive/tar does: the ones it knows replace fields (an empty value keeps
// the field), and all stay in PAXRecords, where the checker looks for
// sparse files.
func mergePAX(h *tar.Header, recs map[string]string) error {
	for k, v := range recs {
		if v == "" {
			continue
		}
		var err error
		switch k {
		case "path":
			h.Name = v
		case "linkpath":
			h.Linkname = v
		case "size":
			h.Size, err = strconv.ParseInt(v, 10, 64)
		case "uid", "gid":
			_, err = strconv.ParseInt(v, 10, 64)
		case "atime", "mtime", "ctime":
			err = paxTime(v)
		}
		if err != nil {
			return headerErr(fmt.Sprintf("pax record %s=%q", k, v))
		}
	}
	if recs != nil {
		h.PAXRecords = recs
	}
	return nil
}

// paxTime checks a pax time, seconds with an optional fraction.
func paxTime(v string) error {
	secs, frac, _ := strings.Cut(v, ".")
	if _, err := strconv.ParseInt(secs, 10, 64); err != nil {
		return err
	}
	if strings.Trim(frac, "0123456789") != "" {
		return errors.New("not a time")
	}
	return nil
}

// numeric parses a numeric header field: octal digits, which may be
// surrounded by spaces and NULs, or GNU's base-256 (top bit set).
func numeric(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0]&0x40 != 0 {
			return 0, false // negative
		}
		var x uint64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if x>>55 != 0 {
				return 0, false
			}
			x = x<<8 | uint64(c)
		}
		return int64(x), true
	}
	return octal(b)
}

// octal parses octal digits surrounded by spaces and NULs; an empty field
// is 0.
func octal(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	var x int64
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '7'; j++ {
		if x>>60 != 0 {
			return 0, false
		}
		x = x<<3 | int64(b[j]-'0')
	}
	for _, c := range b[j:] {
		if c != ' ' && c != 0 {
			return 0, false
		}
	}
	return x, true
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// headerOnly reports whether entries of type flag have no data, whatever
// their size field says.
func headerOnly(flag byte) bool {
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

func headerErr(why string) error { return fmt.Errorf("%w: %s", tar.ErrHeader, why) }

// noEOF turns the end of the stream inside a block or an entry into the
// error it is.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

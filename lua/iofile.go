package lua

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	glua "github.com/yuin/gopher-lua"
)

// luaFile is what io.open returns: a file with read, write, lines and close.
type luaFile struct {
	f       *os.File
	machine string
	r       *bufio.Reader // created on the first read
	closed  bool
}

func (lf *luaFile) close() {
	if !lf.closed {
		lf.closed = true
		_ = lf.f.Close()
	}
}

// openFlags maps a C fopen mode to open(2) flags, and whether it writes.
func openFlags(mode string) (int, bool, bool) {
	switch strings.Replace(mode, "b", "", 1) { // "rb", "r+b", "rb+"
	case "r":
		return os.O_RDONLY, false, true
	case "w":
		return os.O_WRONLY | os.O_CREATE | os.O_TRUNC, true, true
	case "a":
		return os.O_WRONLY | os.O_CREATE | os.O_APPEND, true, true
	case "r+":
		return os.O_RDWR, true, true
	case "w+":
		return os.O_RDWR | os.O_CREATE | os.O_TRUNC, true, true
	case "a+":
		return os.O_RDWR | os.O_CREATE | os.O_APPEND, true, true
	}
	return 0, false, false
}

// fileMethods is the metatable of the file objects of one sandbox.
func (s *sandbox) fileMethods() *glua.LTable {
	mt := s.L.CreateTable(0, 1)
	mt.RawSetString("__index", s.L.SetFuncs(s.L.CreateTable(0, 4), map[string]glua.LGFunction{
		"read": s.fileRead, "write": s.fileWrite, "lines": s.fileLines, "close": s.fileClose,
	}))
	return mt
}

func (s *sandbox) ioOpen(L *glua.LState) int {
	mode := L.OptString(2, "r")
	flag, write, ok := openFlags(mode)
	if !ok {
		L.ArgError(2, "invalid mode "+strconv.Quote(mode))
	}
	acc := readAccess
	if write {
		acc = writeAccess
	}
	l, err := s.resolve(L, "io.open", 1, acc)
	if err != nil {
		return s.fail(L, "io.open", l.machine, err)
	}
	if len(s.files) >= maxOpenFiles {
		return s.fail(L, "io.open", l.machine, syscall.EMFILE)
	}
	r, err := rootOf(l)
	if err != nil {
		return s.fail(L, "io.open", l.machine, err)
	}
	existed := s.exists(l)
	// O_NONBLOCK: a FIFO must not hang the hook; it is refused just below.
	f, err := r.OpenFile(l.rel, flag|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return s.fail(L, "io.open", l.machine, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = errNotRegular
		}
		return s.fail(L, "io.open", l.machine, err)
	}
	if write && (!existed || flag&os.O_TRUNC != 0) {
		s.markCreated(l)
	}
	lf := &luaFile{f: f, machine: l.machine}
	s.files[lf] = struct{}{}
	ud := L.NewUserData()
	ud.Value = lf
	L.SetMetatable(ud, s.fileMeta)
	L.Push(ud)
	return 1
}

// checkFile returns the open file that is argument 1.
func checkFile(L *glua.LState) *luaFile {
	lf, ok := L.CheckUserData(1).Value.(*luaFile)
	if !ok {
		L.ArgError(1, "file expected")
	}
	if lf.closed {
		L.RaiseError("attempt to use a closed file")
	}
	return lf
}

func (s *sandbox) fileClose(L *glua.LState) int {
	lf := checkFile(L)
	lf.close()
	delete(s.files, lf)
	L.Push(glua.LTrue)
	return 1
}

func (s *sandbox) fileWrite(L *glua.LState) int {
	lf := checkFile(L)
	// Reads are buffered: put the file offset back where the script thinks
	// it is before writing.
	if lf.r != nil && lf.r.Buffered() > 0 {
		if _, err := lf.f.Seek(-int64(lf.r.Buffered()), io.SeekCurrent); err != nil {
			return s.fail(L, "write", lf.machine, err)
		}
		lf.r.Reset(lf.f)
	}
	for i := 2; i <= L.GetTop(); i++ {
		v := L.Get(i)
		if v.Type() != glua.LTString && v.Type() != glua.LTNumber {
			L.TypeError(i, glua.LTString)
		}
		if _, err := io.WriteString(lf.f, v.String()); err != nil {
			return s.fail(L, "write", lf.machine, err)
		}
	}
	L.Push(L.Get(1))
	return 1
}

func (s *sandbox) fileLines(L *glua.LState) int {
	lf := checkFile(L)
	L.Push(L.NewFunction(func(L *glua.LState) int {
		if lf.closed {
			L.RaiseError("file is already closed")
		}
		readLine(L, lf.reader())
		return 1
	}))
	return 1
}

func (lf *luaFile) reader() *bufio.Reader {
	if lf.r == nil {
		lf.r = bufio.NewReader(lf.f)
	}
	return lf.r
}

// fileRead implements file:read(...) with Lua 5.1's formats: "*l" (the
// default), "*a", "*n" and a byte count; the "*" is optional.
func (s *sandbox) fileRead(L *glua.LState) int {
	lf := checkFile(L)
	r := lf.reader()
	top := L.GetTop()
	if top == 1 {
		return s.readResult(L, lf, readLine(L, r))
	}
	for i := 2; i <= top; i++ {
		var err error
		switch v := L.Get(i).(type) {
		case glua.LNumber:
			err = readBytes(L, r, int64(v))
		case glua.LString:
			switch strings.TrimPrefix(string(v), "*") {
			case "l":
				err = readLine(L, r)
			case "a":
				err = readAll(L, r)
			case "n":
				err = readNumber(L, r)
			default:
				L.ArgError(i, "invalid format")
			}
		default:
			L.ArgError(i, "invalid format")
		}
		if err != nil || L.Get(-1) == glua.LNil {
			// Lua stops at the first failed format.
			return s.readResult(L, lf, err) + i - 2
		}
	}
	return top - 1
}

// readResult turns a read error into nil, message; a clean EOF has already
// pushed its nil.
func (s *sandbox) readResult(L *glua.LState, lf *luaFile, err error) int {
	if err != nil {
		L.Pop(1)
		return s.fail(L, "read", lf.machine, err)
	}
	return 1
}

func readLine(L *glua.LState, r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	switch {
	case err == io.EOF && line == "":
		L.Push(glua.LNil)
		return nil
	case err != nil && err != io.EOF:
		L.Push(glua.LNil)
		return err
	}
	L.Push(glua.LString(strings.TrimSuffix(line, "\n")))
	return nil
}

func readAll(L *glua.LState, r *bufio.Reader) error {
	b, err := io.ReadAll(r)
	L.Push(glua.LString(b))
	return err
}

func readBytes(L *glua.LState, r *bufio.Reader, n int64) error {
	if n <= 0 {
		if _, err := r.Peek(1); err != nil {
			L.Push(glua.LNil)
			return ignoreEOF(err)
		}
		L.Push(glua.LString(""))
		return nil
	}
	// LimitReader, not make(n): a huge count must not allocate up front.
	b, err := io.ReadAll(io.LimitReader(r, n))
	if len(b) == 0 {
		L.Push(glua.LNil)
		return err
	}
	L.Push(glua.LString(b))
	return err
}

// readNumber reads a number after optional white space, as *n does.
func readNumber(L *glua.LState, r *bufio.Reader) error {
	var tok []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if len(tok) == 0 {
				L.Push(glua.LNil)
				return ignoreEOF(err)
			}
			break
		}
		if len(tok) == 0 && strings.IndexByte(" \t\r\n\v\f", c) >= 0 {
			continue
		}
		if len(tok) >= 200 || !strings.ContainsRune("0123456789abcdefABCDEFxX.+-pP", rune(c)) {
			_ = r.UnreadByte()
			break
		}
		tok = append(tok, c)
	}
	if n, err := strconv.ParseFloat(string(tok), 64); err == nil {
		L.Push(glua.LNumber(n))
	} else if n, err := strconv.ParseInt(string(tok), 0, 64); err == nil {
		L.Push(glua.LNumber(n))
	} else {
		L.Push(glua.LNil)
	}
	return nil
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

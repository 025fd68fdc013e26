package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Sizes: Lua's own C-call limit, a value stack that may grow to 256Ki slots
// (4 MiB) so that unpack{...} of a huge table fails cleanly, and the files a
// hook may hold open at once.
const (
	callStackSize   = 200
	registrySize    = 256
	registryMaxSize = 256 << 10
	maxOpenFiles    = 64
)

// sandbox is one hook run: the Lua state, the directories it may touch, and
// what it did to them.
type sandbox struct {
	hook     Hook
	roots    []*dirRoot
	prot     protection
	L        *glua.LState
	fileMeta *glua.LTable // metatable of io.open's file objects
	out      output

	created map[string]loc        // by machine path
	removed map[string]loc        // by machine path
	before  map[string]bool       // whether a path the hook changed existed before
	files   map[*luaFile]struct{} // open, closed at the end

	denied *violation // the first sandbox violation, fatal even if caught
}

type violation struct {
	line int
	err  error
}

// newSandbox prepares hook h with what a sandbox child carried over.
func newSandbox(h Hook, lim Limits, c carried) *sandbox {
	s := &sandbox{
		hook:    h,
		roots:   newRoots(h, c.roots),
		prot:    newProtection(h.Protected, h.Package, c.owners, c.claims),
		out:     output{max: lim.OutputBytes},
		created: make(map[string]loc),
		removed: make(map[string]loc),
		before:  make(map[string]bool),
		files:   make(map[*luaFile]struct{}),
	}
	s.L = glua.NewState(glua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       callStackSize,
		MinimizeStackMemory: true, // grow the call stack only as deep as needed
		RegistrySize:        registrySize,
		RegistryMaxSize:     registryMaxSize,
	})
	std := c.std
	if std == nil { // Run: nothing carried
		std = newStdlib()
	}
	s.setup(std)
	return s
}

// exec compiles and runs the script under ctx.
func (s *sandbox) exec(ctx context.Context) error {
	fn, err := s.L.Load(bytes.NewReader(s.hook.Source), s.hook.Script)
	if err != nil {
		return err
	}
	s.L.SetContext(ctx)
	s.L.Push(fn)
	return s.L.PCall(0, 0, nil)
}

func (s *sandbox) close() {
	for f := range s.files {
		f.close()
	}
	s.L.Close()
	closeRoots(s.roots)
}

// result lists what the hook left behind: paths it created or replaced that
// exist at the end; paths that existed before it and that it removed.
func (s *sandbox) result() Result {
	res := Result{Output: s.out.String()}
	for p, l := range s.created {
		if s.exists(l) {
			res.Created = append(res.Created, p)
		}
	}
	for p, l := range s.removed {
		if s.before[p] && !s.exists(l) {
			res.Removed = append(res.Removed, p)
		}
	}
	slices.Sort(res.Created)
	slices.Sort(res.Removed)
	return res
}

func (s *sandbox) exists(l loc) bool {
	r, err := l.dir.open()
	if err != nil {
		return false
	}
	_, err = r.Lstat(l.rel)
	return err == nil
}

// touch records whether l exists, before the hook first changes it.
func (s *sandbox) touch(l loc) {
	if _, ok := s.before[l.machine]; !ok {
		s.before[l.machine] = s.exists(l)
	}
}

func (s *sandbox) markCreated(l loc) {
	delete(s.removed, l.machine)
	s.created[l.machine] = l
}

func (s *sandbox) markRemoved(l loc) {
	delete(s.created, l.machine)
	s.removed[l.machine] = l
}

// deny records a sandbox violation and raises it in L (the hook's state, or
// a coroutine of it). The record makes the hook fail even if the script
// catches the error with pcall.
func (s *sandbox) deny(L *glua.LState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.denied == nil {
		s.denied = &violation{line: callerLine(L), err: deniedError(msg)}
	}
	L.RaiseError("%s", msg)
}

// callerLine is the line of the innermost Lua function on L's stack, or 0.
func callerLine(L *glua.LState) int {
	for level := 1; ; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			return 0
		}
		if _, err := L.GetInfo("l", dbg, glua.LNil); err == nil && dbg.CurrentLine > 0 {
			return dbg.CurrentLine
		}
	}
}

// splitLuaError turns what PCall or Load returned into a line and a message
// without the position gopher-lua puts in front ("install.lua:12: ").
func splitLuaError(script string, err error) (int, string) {
	var aerr *glua.ApiError
	var perr *parse.Error
	if errors.As(err, &aerr) && aerr.Cause != nil {
		err = aerr.Cause // a syntax error: gopher-lua's ApiError has no Unwrap
	}
	if errors.As(err, &perr) {
		msg := strings.TrimSpace(perr.Message)
		if perr.Pos.Line == parse.EOF {
			return 0, msg + " at end of file"
		}
		return perr.Pos.Line, fmt.Sprintf("%s near '%s'", msg, perr.Token)
	}
	msg := err.Error()
	if errors.As(err, &aerr) {
		msg = aerr.Object.String()
	}
	rest, ok := strings.CutPrefix(msg, script+":")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 0, msg
	}
	return n, text
}

// output collects what print writes, up to max bytes.
type output struct {
	buf       strings.Builder
	max       int
	truncated bool
}

const truncatedMark = "\n[output truncated]\n"

func (o *output) write(s string) {
	if o.truncated {
		return
	}
	if room := o.max - o.buf.Len(); len(s) > room {
		o.buf.WriteString(s[:room])
		o.buf.WriteString(truncatedMark)
		o.truncated = true
		return
	}
	o.buf.WriteString(s)
}

func (o *output) String() string { return o.buf.String() }

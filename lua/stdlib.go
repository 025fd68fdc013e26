package lua

import (
	"fmt"
	"slices"

	glua "github.com/yuin/gopher-lua"
)

// stdlib is Lua's own library as hooks get it: base (with coroutine, as in
// Lua 5.1), table, string and math, without what hooks must not have
// (forbiddenGlobals, string.dump) and with the string functions capped
// (strcaps.go). A sandbox child builds it once, in a scratch state, and
// copies it into every hook's state: the tables are the hook's own, made
// afresh (a hook may change them), the functions in them are shared.
//
// Sharing a Go function between states is safe because nothing hooks have
// can reach into one: its environment is read or replaced only through
// getfenv, setfenv and the loaders, its upvalues only through the debug
// library, and hooks have none of them. (gopher-lua v1.1.2 also gives a Go
// function the calling state's environment, not its own, when it makes a
// function or a thread.) As a second wall, the scratch state's _G, the
// environment every shared function keeps, is emptied once the library is
// copied out of it. Opening the libraries for every hook instead cost a
// quarter of a hook's time in the child (a hundred functions made,
// registered and partly deleted again).
type stdlib struct {
	globals []field   // of _G, apart from _G itself and the libraries
	libs    []library // in the order they are set
}

type field struct {
	name  string
	value glua.LValue
}

type library struct {
	name   string
	fields []field
}

func newStdlib() *stdlib {
	L := glua.NewState(glua.Options{SkipOpenLibs: true})
	defer L.Close()
	// Base first: it is _G itself. Its coroutine library is Lua 5.1's.
	opens := []struct {
		name string
		open glua.LGFunction
	}{
		{glua.BaseLibName, glua.OpenBase},
		{glua.TabLibName, glua.OpenTable},
		{glua.StringLibName, glua.OpenString},
		{glua.MathLibName, glua.OpenMath},
		{glua.CoroutineLibName, glua.OpenCoroutine},
	}
	for _, lib := range opens {
		L.Push(L.NewFunction(lib.open))
		L.Push(glua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	capString(L, g.RawGetString(glua.StringLibName).(*glua.LTable))

	std := &stdlib{}
	libs := map[*glua.LTable]bool{g: true} // _G and the tables of libraries: not globals to share
	for _, lib := range opens[1:] {
		tb := g.RawGetString(lib.name).(*glua.LTable)
		libs[tb] = true
		std.libs = append(std.libs, library{name: lib.name, fields: fields(tb)})
	}
	forbidden := forbiddenGlobals()
	var names []string
	g.ForEach(func(k, v glua.LValue) {
		name := fieldName(k)
		names = append(names, name)
		if tb, ok := v.(*glua.LTable); (ok && libs[tb]) || slices.Contains(forbidden, name) {
			return
		}
		std.globals = append(std.globals, field{name, shareable(name, v)})
	})
	for _, name := range names {
		g.RawSetString(name, glua.LNil)
	}
	return std
}

// fields lists tb's fields.
func fields(tb *glua.LTable) []field {
	var out []field
	tb.ForEach(func(k, v glua.LValue) {
		name := fieldName(k)
		out = append(out, field{name, shareable(name, v)})
	})
	return out
}

// fieldName is k, a key of a library table, which is a string.
func fieldName(k glua.LValue) string {
	name, ok := k.(glua.LString)
	if !ok {
		panic(fmt.Sprintf("lua: library field with a key of type %s", k.Type()))
	}
	return string(name)
}

// shareable returns v, which hooks will share: a function or an immutable
// value. Anything else (a table, userdata, a thread) would let one hook
// change what the next one sees; a library that brought one is a bug to
// stop at, not to share.
func shareable(name string, v glua.LValue) glua.LValue {
	switch v.Type() {
	case glua.LTFunction, glua.LTNumber, glua.LTString, glua.LTBool:
		return v
	}
	panic(fmt.Sprintf("lua: library value %s is a %s, which hooks cannot share", name, v.Type()))
}

// install fills L's (fresh) global table: the globals, _G, and a table of
// its own for every library.
func (std *stdlib) install(L *glua.LState) {
	g := L.G.Global
	for _, f := range std.globals {
		g.RawSetString(f.name, f.value)
	}
	g.RawSetString("_G", g)
	for _, lib := range std.libs {
		tb := L.CreateTable(0, len(lib.fields))
		for _, f := range lib.fields {
			tb.RawSetString(f.name, f.value)
		}
		g.RawSetString(lib.name, tb)
	}
}

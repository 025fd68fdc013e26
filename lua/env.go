package lua

import (
	"path"
	"slices"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// forbiddenGlobals are the globals the base library brings (or Lua has) that
// hooks must not have. Reading one fails the hook with an error naming it,
// rather than yielding nil and a vague "attempt to call a nil value" later.
func forbiddenGlobals() []string {
	return []string{
		"load", "loadstring", "dofile", "loadfile", "require", "module",
		"getfenv", "setfenv", "collectgarbage", "newproxy", "_printregs",
		"_GOPHER_LUA_VERSION", "debug", "package",
	}
}

// setup builds the hook's environment: Lua's library from std, a
// metatable on _G that names the globals hooks must not have, then the
// packets API: globals, print, path_join, and os and io tables of its own.
func (s *sandbox) setup(std *stdlib) {
	L := s.L
	std.install(L)
	g := L.G.Global
	L.SetMetatable(g, s.missingNames("", forbiddenGlobals()))
	s.setupString()

	g.RawSetString("print", L.NewFunction(s.print))
	g.RawSetString("path_join", L.NewFunction(pathJoin))
	g.RawSetString("packets_package_dir", glua.LString(s.hook.PackageDir))
	g.RawSetString("packets_bin_dir", glua.LString(s.hook.BinDir))
	g.RawSetString("data_dir", glua.LString(s.hook.DataDir))
	g.RawSetString("script", glua.LString(s.hook.Script))
	opts := L.CreateTable(0, len(s.hook.Options))
	for k, v := range s.hook.Options {
		opts.RawSetString(k, glua.LString(v))
	}
	g.RawSetString("options", opts)

	osTable := L.SetFuncs(L.CreateTable(0, 4), map[string]glua.LGFunction{
		"remove": s.osRemove, "rename": s.osRename, "copy": s.osCopy, "symlink": s.osSymlink,
	})
	L.SetMetatable(osTable, s.missingNames("os.", nil))
	g.RawSetString("os", osTable)
	s.fileMeta = s.fileMethods()
	ioTable := L.SetFuncs(L.CreateTable(0, 1), map[string]glua.LGFunction{"open": s.ioOpen})
	L.SetMetatable(ioTable, s.missingNames("io.", nil))
	g.RawSetString("io", ioTable)
}

// missingNames is a metatable whose __index denies "PREFIXname is not
// available in packets hooks" for the given names (for all names when names
// is nil) and yields nil otherwise. Reaching for a removed function fails the
// hook even under pcall, as any other attempt to leave the sandbox does.
func (s *sandbox) missingNames(prefix string, names []string) *glua.LTable {
	mt := s.L.CreateTable(0, 1)
	mt.RawSetString("__index", s.L.NewFunction(func(L *glua.LState) int {
		name, ok := L.Get(2).(glua.LString)
		if ok && (names == nil || slices.Contains(names, string(name))) {
			s.deny(L, "%s%s is not available in packets hooks", prefix, name)
		}
		L.Push(glua.LNil)
		return 1
	}))
	return mt
}

// print writes its arguments, tab-separated, to the capped output.
func (s *sandbox) print(L *glua.LState) int {
	top := L.GetTop()
	var b strings.Builder
	for i := 1; i <= top; i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	b.WriteByte('\n')
	s.out.write(b.String())
	return 0
}

// pathJoin joins its arguments with "/" and cleans the result, as Go's
// path.Join does: path_join("/usr", "bin", "htop") == "/usr/bin/htop".
func pathJoin(L *glua.LState) int {
	top := L.GetTop()
	parts := make([]string, 0, top)
	for i := 1; i <= top; i++ {
		parts = append(parts, L.CheckString(i))
	}
	L.Push(glua.LString(path.Join(parts...)))
	return 1
}

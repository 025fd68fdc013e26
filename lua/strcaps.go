package lua

import (
	"math"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// Caps on the string functions that run in Go and so cannot be interrupted by
// the VM's context check: string.rep's result, and the pattern functions'
// inputs. A pattern with q repetition items (x*, x+, x-) can backtrack in
// about n^q steps on a subject of n bytes, so the subject may be at most
// 2^(patternBudgetLog2/q) bytes: 64 KiB at q=3, 4 KiB at q=4, 776 bytes at
// q=5. What still backtracks badly within the caps runs into the time limit,
// which kills the sandbox process.
const (
	maxRepBytes       = 16 << 20
	maxSubjectBytes   = 1 << 20
	maxPatternBytes   = 1 << 10
	patternBudgetLog2 = 48
)

// capString removes string.dump and the __index gopher-lua gives the
// string table (it uses the table itself as strings' metatable, where
// string.__index would be visible), and caps rep and the pattern functions.
// It runs once, on the scratch state of a stdlib.
func capString(L *glua.LState, str *glua.LTable) {
	str.RawSetString("dump", glua.LNil)
	str.RawSetString("__index", glua.LNil)
	str.RawSetString("rep", L.NewFunction(strRep))
	for _, name := range []string{"find", "match", "gmatch", "gfind", "gsub"} {
		orig := str.RawGetString(name).(*glua.LFunction)
		str.RawSetString(name, L.NewFunction(capPattern("string."+name, orig)))
	}
}

// setupString gives strings a metatable of their own whose __index is the
// hook's string table, which denies string.dump by name.
func (s *sandbox) setupString() {
	L := s.L
	str := L.GetGlobal(glua.StringLibName).(*glua.LTable)
	L.SetMetatable(str, s.missingNames("string.", []string{"dump"}))
	mt := L.CreateTable(0, 1)
	mt.RawSetString("__index", str)
	L.SetMetatable(glua.LString(""), mt)
}

// strRep is string.rep with its result capped.
func strRep(L *glua.LState) int {
	str := L.CheckString(1)
	n := math.Floor(float64(L.CheckNumber(2)))
	if !(n >= 1) || len(str) == 0 { // also NaN
		L.Push(glua.LString(""))
		return 1
	}
	if size := float64(len(str)) * n; size > maxRepBytes {
		L.RaiseError("string.rep: result of %.0f bytes exceeds the limit of %d", size, maxRepBytes)
	}
	L.Push(glua.LString(strings.Repeat(str, int(n))))
	return 1
}

// capPattern wraps a pattern function: it checks the sizes, then calls the
// original with the same arguments and returns all it returns.
func capPattern(name string, orig *glua.LFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		subject, ok1 := L.Get(1).(glua.LString)
		pattern, ok2 := L.Get(2).(glua.LString)
		plain := name == "string.find" && L.ToBool(4)
		if ok1 && ok2 && !plain {
			checkPattern(L, name, string(subject), string(pattern))
		}
		top := L.GetTop()
		L.Push(orig)
		for i := 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top, glua.MultRet)
		return L.GetTop() - top
	}
}

func checkPattern(L *glua.LState, name, subject, pattern string) {
	n := len(subject)
	switch q := repetitions(pattern); {
	case len(pattern) > maxPatternBytes:
		L.RaiseError("%s: pattern of %d bytes exceeds the limit of %d", name, len(pattern), maxPatternBytes)
	case n > maxSubjectBytes:
		L.RaiseError("%s: subject of %d bytes exceeds the limit of %d", name, n, maxSubjectBytes)
	case q > 1 && float64(q)*math.Log2(float64(n)) > patternBudgetLog2:
		limit := int(math.Exp2(patternBudgetLog2 / float64(q)))
		L.RaiseError("%s: pattern with %d repetitions on a subject of %d bytes could backtrack too long (limit %d bytes at %d repetitions)",
			name, q, n, limit, q)
	}
}

// repetitions counts the items of a Lua pattern followed by *, + or -.
func repetitions(p string) int {
	n := 0
	for i := 0; i < len(p); {
		switch {
		case p[i] == '%' && i+1 < len(p) && p[i+1] == 'b': // %bxy takes no quantifier
			i += 4
			continue
		case p[i] == '%' && i+1 < len(p) && p[i+1] == 'f': // %f[set] neither
			i = skipSet(p, i+2)
			continue
		case p[i] == '%':
			i += 2
		case p[i] == '[':
			i = skipSet(p, i)
		default:
			i++
		}
		if i < len(p) && strings.IndexByte("*+-", p[i]) >= 0 {
			n++
			i++
		}
	}
	return n
}

// skipSet returns the index just after the set [...] that starts at i.
func skipSet(p string, i int) int {
	if i >= len(p) || p[i] != '[' {
		return i
	}
	j := i + 1
	if j < len(p) && p[j] == '^' {
		j++
	}
	if j < len(p) && p[j] == ']' { // a leading ] is literal
		j++
	}
	for j < len(p) && p[j] != ']' {
		if p[j] == '%' {
			j++
		}
		j++
	}
	return j + 1
}

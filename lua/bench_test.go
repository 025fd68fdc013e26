package lua_test

import (
	"fmt"
	"testing"

	"github.com/packets-dev/packets/lua"
)

// benchHook is a typical install.lua: replace a link in the bin dir.
const benchHook = `local link = path_join(packets_bin_dir, "htop")
os.remove(link)
assert(os.symlink(path_join(data_dir, "bin/htop"), link))`

// BenchmarkHooks200 runs 200 hooks per op in-process and through one sandbox
// child (started outside the timer). The child pays for the process
// boundary but keeps what hooks share from one to the next (Lua's library,
// the bin dir opened), which Run builds afresh for every hook:
//
//	go test -run '^$' -bench Hooks200 -benchtime 20x ./lua
func BenchmarkHooks200(b *testing.B) {
	m := newMachine(b)
	for _, bench := range []struct{ name, src string }{{"symlink", benchHook}, {"copy", copyHook}, {"empty", ""}} {
		b.Run(bench.name, func(b *testing.B) { benchHooks200(b, m.hook(bench.src)) })
	}
}

// copyHook is the install.lua of the W10 benchmark: copy the package's
// executable into the bin dir.
const copyHook = `local ok, err = os.copy(path_join(data_dir, "bin/htop"), path_join(packets_bin_dir, "htop"))
if not ok then error(err) end`

func benchHooks200(b *testing.B, h lua.Hook) {
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			for range 200 {
				if _, err := lua.Run(b.Context(), h, quick); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("child", func(b *testing.B) {
		s, err := testRunner(quick).Start(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for b.Loop() {
			for range 200 {
				if _, err := s.Run(b.Context(), h); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkStart is the start-up of a sandbox child, paid once per apply.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s, err := testRunner(quick).Start(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOwners runs 200 W10 hooks through one child, each sent before
// the result of the one before is read, as an apply does, on a machine
// whose bin dir holds 5,000 paths of other packages: given with every hook
// (Hook.Protected) or once for the session (SetOwners, what packets does).
func BenchmarkOwners(b *testing.B) {
	m := newMachine(b)
	owners := map[string]string{}
	var paths []string
	for i := range 5000 {
		p := fmt.Sprintf("/usr/bin/other-tool-%04d", i)
		owners[p] = "other"
		paths = append(paths, p)
	}
	for _, bench := range []struct {
		name string
		set  func(*lua.Session, *lua.Hook)
	}{
		{"with-every-hook", func(_ *lua.Session, h *lua.Hook) { h.Protected = paths }},
		{"once", func(s *lua.Session, h *lua.Hook) { h.Protected = nil; s.SetOwners(owners) }},
	} {
		b.Run(bench.name, func(b *testing.B) {
			s, err := testRunner(quick).Start(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			h := m.hook(copyHook)
			bench.set(s, &h)
			for b.Loop() {
				sent := make([]*lua.Pending, 0, 200)
				for range 200 {
					sent = append(sent, s.Send(b.Context(), h))
				}
				for _, p := range sent {
					if _, err := p.Wait(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// Package lua runs a package's install.lua and remove.lua hooks in a
// sandbox.
//
// It owns the hook API, the confinement of hooks to their directories, and
// the sandbox child process that enforces the time and memory limits. It
// imports only the standard library and gopher-lua; it knows nothing of
// installed.db or plans: the apply engine (wired in cmd/packets) calls it and
// records what it reports. It never prints: what hooks print comes back in
// Result.Output, for the caller to log.
//
// # Running hooks
//
// An apply starts one child with Runner.Start and runs its hooks in turn
// with Session.Run, so the start-up is paid once. The child is the packets
// binary re-executed as `packets __hook-child`, whose main calls
// ServeChild(ctx, os.Stdin, os.Stdout). It runs in its own process group and
// is killed by the kernel if packets dies (Pdeathsig). Parent and child speak
// newline-delimited JSON: a hello from the child, then one request (the Hook
// and the Limits, and the owners and claims when they change) and one
// response (the Result or the error) per hook. The child keeps what all its
// hooks share from one to the next: Lua's library (built once, its
// functions shared, each hook's tables its own), the machine tree and the
// bin dir opened, and the paths other packages own.
//
// Each hook has a wall-clock limit (config [hooks] timeout, default 60 s):
// the child stops the hook itself when it can, and the parent kills the child
// shortly after the limit when it cannot (a Go function stuck in a pattern
// match). Each hook has a memory limit: the child cancels a hook whose heap
// passes it, and RLIMIT_AS kills the child on an allocation too large to
// wait for. After a kill the next Run starts a fresh child. Every failure is
// a *HookError naming the package, the script and, where known, the line:
// "htop: install.lua:12: message".
//
// Run runs a hook in-process, without the memory limit, as the child does
// but with nothing kept from another hook; tests use it. The package's own tests run the child as the
// usual Go trick: TestMain serves the protocol when an environment variable
// is set, and the Runner re-executes the test binary with it (main_test.go).
//
// # For hook authors
//
// install.lua runs after a package's files are in place; remove.lua runs
// before they are removed. On an upgrade the old build's remove.lua runs,
// then the new build's install.lua.
//
// Hooks must be idempotent. After a crash, recovery may run a hook again,
// on a system where it already ran wholly or in part. Write hooks that reach
// the same end state from anywhere: remove a link before creating it
// (os.remove returns nil, err when it is already gone, which is fine), let
// os.copy overwrite, write whole files with io.open(path, "w").
//
// Each hook runs in a fresh Lua 5.1 state with only the base (including
// coroutine), table, string and math libraries. These globals are set:
//
//	packets_package_dir  the package's directory, e.g. /opt/packets/htop
//	data_dir             its data/ tree, e.g. /opt/packets/htop/data
//	packets_bin_dir      where executables go, e.g. /usr/bin
//	script               "install.lua" or "remove.lua"
//	options              the package's options from the state file, strings
//
// and these functions:
//
//	os.remove(path)           remove a file, a symlink or an empty directory
//	os.rename(old, new)       rename; between the package and the bin
//	                          directory a file or symlink is copied then
//	                          removed, and a directory fails with EXDEV
//	os.copy(src, dst)         copy a regular file over dst (replacing it, even
//	                          a symlink), keeping src's mode
//	os.symlink(target, link)  create link pointing to target
//	io.open(path, mode)       open a regular file; modes r w a r+ w+ a+ (b
//	                          ignored); the file has read, write, lines, close
//	path_join(...)            join with "/" and clean: path_join(data_dir, "bin/htop")
//	print(...)                to the packets log, capped at 64 KiB per hook
//
// Nothing else: load, loadstring, dofile, loadfile, require, module,
// getfenv, setfenv, debug, collectgarbage, string.dump, io.popen, os.execute,
// os.getenv, os.exit and every other os and io function are absent, and
// naming one fails the hook.
//
// Paths are machine paths: absolute ones as on the target machine (under
// packets --root when one is given), relative ones relative to
// packets_package_dir. The file functions reach only the package directory,
// the data directory and the bin directory, and write only in the package
// directory and the bin directory (configurable). Symlinks are followed as
// the kernel would, absolute targets as machine paths, as long as they stay
// inside those directories; each is opened as an os.Root, so neither ".." nor
// a symlink can leave it. A call that would leave them raises an error, and
// the hook fails even if it catches that error with pcall. So do writing,
// removing or renaming a path that belongs to another package, and creating
// a symlink whose target is outside the directories (a relative target is
// relative to the link's directory; a symlink moved by os.rename is checked
// again at its new place). Paths must be UTF-8 without control or
// bidirectional-override characters, at most 4096 bytes. Ordinary failures
// return nil, a message and an errno, as in standard Lua: io.open of a
// missing file returns nil, "/opt/packets/htop/data/x: no such file or
// directory", 2.
//
// Every path a hook creates or replaces is reported in Result.Created, and
// packets records it as owned by the package: removing the package deletes it
// even if remove.lua forgets to. A directory moved by os.rename is reported
// as itself, not file by file. Result.Removed lists the paths that existed
// before the hook and that it removed.
//
// Go functions cannot be interrupted, so the ones whose cost depends on their
// input are capped: string.rep's result at 16 MiB, the subject of
// string.find/match/gmatch/gsub at 1 MiB and their pattern at 1 KiB, and a
// pattern with q repetition items (x*, x+, x-) with q > 1 to a subject of
// 2^(48/q) bytes (4 KiB at q = 4): split large texts into lines first.
package lua

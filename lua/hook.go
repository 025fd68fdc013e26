package lua

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Hook is one script run. Paths are as the hook sees them on the target machine
// (e.g. "/opt/packets/htop"); Root is the directory they live under (packets
// --root, "/" in production).
type Hook struct {
	Package    string            // package name, for messages
	Script     string            // "install.lua" or "remove.lua", the `script` global and the chunk name
	Source     []byte            // the script text
	Root       string            // host directory that machine paths are relative to
	PackageDir string            // packets_package_dir, e.g. /opt/packets/htop
	DataDir    string            // data_dir, e.g. /opt/packets/htop/data
	BinDir     string            // packets_bin_dir, e.g. /usr/bin
	Writable   []string          // machine-path prefixes the hook may write (nil: PackageDir and BinDir)
	Protected  []string          // machine paths owned by other packages: writing/removing/renaming onto them raises
	Options    map[string]string // the `options` table
}

// Result is what a hook did.
type Result struct {
	// Created holds the machine paths (absolute, e.g. /usr/bin/htop) the hook
	// created or replaced and that still exist at the end, sorted. A directory
	// appears only as itself (os.rename of a directory), never with its contents.
	Created []string
	// Removed holds the machine paths that existed before the hook, that it
	// removed or renamed away, and that do not exist at the end, sorted.
	Removed []string
	// Output is what print wrote, capped at Limits.OutputBytes.
	Output string
}

// Limits bound one hook run. Zero fields take the defaults.
type Limits struct {
	// Timeout is the wall-clock limit of one hook (config [hooks] timeout).
	// Default 60 s.
	Timeout time.Duration
	// MemoryBytes is the heap a hook may use. It is enforced only in the
	// sandbox child (Session), never by an in-process Run. Default 256 MiB.
	MemoryBytes uint64
	// OutputBytes caps what print may write. Default 64 KiB.
	OutputBytes int
}

// Default limits.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultMemoryBytes = 256 << 20
	DefaultOutputBytes = 64 << 10
)

// maxScriptBytes bounds a hook's source (real hooks are a few hundred
// bytes); maxErrorBytes the message of error(...) that reaches logs.
const (
	maxScriptBytes = 1 << 20
	maxErrorBytes  = 4 << 10
)

func (lim Limits) withDefaults() Limits {
	if lim.Timeout <= 0 {
		lim.Timeout = DefaultTimeout
	}
	if lim.MemoryBytes == 0 {
		lim.MemoryBytes = DefaultMemoryBytes
	}
	if lim.OutputBytes <= 0 {
		lim.OutputBytes = DefaultOutputBytes
	}
	return lim
}

// Sentinel errors a *HookError may wrap.
var (
	// ErrTimeout: the hook ran past Limits.Timeout.
	ErrTimeout = errors.New("time limit exceeded")
	// ErrMemoryLimit: the hook used more than Limits.MemoryBytes.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrDenied: the hook tried to leave the sandbox (a path outside its
	// directories, a protected path, a removed function). The hook fails even
	// if it caught the error with pcall.
	ErrDenied = errors.New("denied by the hook sandbox")
)

// HookError is a failed hook: its package, script, the line the error was
// raised at (0 when unknown) and the cause.
type HookError struct {
	Package, Script string
	Line            int
	Err             error
}

// Error reads "htop: install.lua:12: message".
func (e *HookError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s:%d: %v", e.Package, e.Script, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Package, e.Script, e.Err)
}

// Unwrap returns the cause.
func (e *HookError) Unwrap() error { return e.Err }

// deniedError is a sandbox violation: its message, and Is(ErrDenied).
type deniedError string

func (e deniedError) Error() string        { return string(e) }
func (e deniedError) Is(target error) bool { return target == ErrDenied }

// limitError is a resource limit hit, with a detail: Is its sentinel.
type limitError struct {
	sentinel error
	detail   string
}

func (e *limitError) Error() string { return e.sentinel.Error() + " (" + e.detail + ")" }
func (e *limitError) Unwrap() error { return e.sentinel }

// Run runs one hook in-process in a fresh sandboxed Lua state and reports what
// it did. Every error is a *HookError. The wall-clock limit is enforced
// cooperatively (the VM checks ctx between instructions); the memory limit is
// not enforced at all: untrusted hooks go through a Session, whose child
// process is killed when either limit passes.
func Run(ctx context.Context, h Hook, lim Limits) (Result, error) {
	return run(ctx, h, lim, carried{})
}

// carried is what a sandbox child carries from one hook to the next; Run
// carries nothing.
type carried struct {
	roots  *keptRoots // directories kept open
	claims claims     // protected as Hook.Protected is from every other package's hooks
	owners claims     // the same, from installed.db (Session.SetOwners)
	std    *stdlib    // Lua's library, built once
}

// run is Run, with what a sandbox child carries.
func run(ctx context.Context, h Hook, lim Limits, c carried) (Result, error) {
	lim = lim.withDefaults()
	fail := func(line int, err error) (Result, error) {
		return Result{}, &HookError{Package: h.Package, Script: h.Script, Line: line, Err: err}
	}
	if err := h.validate(); err != nil {
		return fail(0, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, lim.Timeout, &limitError{ErrTimeout, lim.Timeout.String()})
	defer cancel()

	sb := newSandbox(h, lim, c)
	defer sb.close()
	runErr := sb.exec(ctx)
	res := sb.result()

	// Order matters: a sandbox violation is the real story even when the
	// script went on to fail for another reason (or caught it with pcall);
	// then a limit, whose Lua message is only "context deadline exceeded".
	switch {
	case sb.denied != nil:
		return res, &HookError{Package: h.Package, Script: h.Script, Line: sb.denied.line, Err: sb.denied.err}
	case runErr == nil:
		return res, nil
	}
	line, msg := splitLuaError(h.Script, runErr)
	if cause := context.Cause(ctx); cause != nil {
		return res, &HookError{Package: h.Package, Script: h.Script, Line: line, Err: cause}
	}
	if len(msg) > maxErrorBytes {
		msg = strings.ToValidUTF8(msg[:maxErrorBytes], "") + "…"
	}
	return res, &HookError{Package: h.Package, Script: h.Script, Line: line, Err: errors.New(msg)}
}

// validate refuses a Hook the engine filled in wrongly: the sandbox relies on
// absolute, clean machine paths.
func (h Hook) validate() error {
	if h.Script == "" || strings.ContainsAny(h.Script, "/\x00") {
		return fmt.Errorf("invalid script name %q", h.Script)
	}
	if h.Root == "" {
		return errors.New("empty root")
	}
	if len(h.Source) > maxScriptBytes {
		return fmt.Errorf("script of %d bytes exceeds %d", len(h.Source), maxScriptBytes)
	}
	dirs := append([]string{h.PackageDir, h.DataDir, h.BinDir}, h.Writable...)
	for _, d := range append(dirs, h.Protected...) {
		if !path.IsAbs(d) || path.Clean(d) != d || strings.ContainsRune(d, 0) {
			return fmt.Errorf("machine path %q is not absolute and clean", d)
		}
	}
	return nil
}

// writable returns the hook's writable prefixes, defaulted.
func (h Hook) writable() []string {
	if h.Writable == nil {
		return []string{h.PackageDir, h.BinDir}
	}
	return h.Writable
}

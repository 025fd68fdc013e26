package lua

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The protocol between a Session and its child: newline-delimited JSON. The
// child first writes a hello, then for each request line it runs the hook
// and writes one response line. It never writes anything else to stdout; the
// Lua print goes into the response.
//
// Claims: a path outside its package dir that a hook created belongs to
// that hook's package from then on, for the hooks after it, although
// packets records it only once a batch of hooks has run (and the next
// request is written before the result it depends on is read). The child
// keeps the claims of the hooks it ran and protects them from every other
// package's hooks. A request whose Claims is not null replaces the
// child's: a child's first request carries the claims the session read so
// far (a child started after a kill), and the first request after the
// session went idle carries none (installed.db records them by then).
//
// Owners: the paths that installed.db gives to packages (Session.SetOwners),
// protected from every other package's hooks as claims are. A request whose
// Owners is not null replaces the child's: the session sends them with the
// first request after they changed, and with a new child's first.
const (
	protocolVersion = 3
	maxMessageBytes = 64 << 20
	// memoryPoll is how often the child samples its heap while a hook runs.
	memoryPoll = 5 * time.Millisecond
)

type hello struct {
	PacketsHookChild int `json:"packets_hook_child"`
}

type request struct {
	Hook   Hook   `json:"hook"`
	Limits Limits `json:"limits"`
	// Claims, when not null, replaces the child's claims (machine path ->
	// package).
	Claims claims `json:"claims"`
	// Owners, when not null, replaces the child's owners (machine path ->
	// package).
	Owners claims `json:"owners"`
}

type response struct {
	Result Result     `json:"result"`
	Error  *wireError `json:"error,omitempty"`
}

// wireError carries a *HookError across the process boundary; Kind restores
// the sentinel it wraps.
type wireError struct {
	Package string `json:"package"`
	Script  string `json:"script"`
	Line    int    `json:"line"`
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message"`
}

// errorKinds are the sentinels that cross the boundary, by wire name.
func errorKinds() map[string]error {
	return map[string]error{"timeout": ErrTimeout, "memory": ErrMemoryLimit, "denied": ErrDenied}
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Message: err.Error()}
	var he *HookError
	if errors.As(err, &he) {
		w.Package, w.Script, w.Line, w.Message = he.Package, he.Script, he.Line, he.Err.Error()
	}
	for kind, sentinel := range errorKinds() {
		if errors.Is(err, sentinel) {
			w.Kind = kind
		}
	}
	return w
}

func (w *wireError) hookError() *HookError {
	var err error = errors.New(w.Message)
	if sentinel, ok := errorKinds()[w.Kind]; ok {
		err = &remoteError{msg: w.Message, sentinel: sentinel}
	}
	return &HookError{Package: w.Package, Script: w.Script, Line: w.Line, Err: err}
}

// remoteError is an error from the child that wraps one of the sentinels.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// ServeChild is the sandbox child's loop: it reads hook requests from in,
// runs each with Run under its limits, and writes the results to out. It
// returns nil when in ends. cmd/packets runs it for the hidden subcommand
// `packets __hook-child` with os.Stdin and os.Stdout.
//
// Besides Run's own limits, the child bounds its memory: a watchdog cancels
// a hook whose heap passes Limits.MemoryBytes, and RLIMIT_AS (twice the
// limit above the start-up size) stops a single allocation the watchdog
// cannot interrupt, killing the child.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer) error {
	base := vmSize()
	enc := json.NewEncoder(out)
	if err := enc.Encode(hello{PacketsHookChild: protocolVersion}); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxMessageBytes)
	var memory uint64 // the limit in force; a session sends the same every time
	c := carried{roots: newKeptRoots(), claims: claims{}, owners: claims{}, std: newStdlib()}
	defer c.roots.close()
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("read hook request: %w", err)
		}
		if req.Claims != nil {
			c.claims = req.Claims
		}
		if req.Owners != nil {
			c.owners = req.Owners
		}
		lim := req.Limits.withDefaults()
		if lim.MemoryBytes != memory {
			if err := limitMemory(base, lim.MemoryBytes); err != nil {
				return err
			}
			memory = lim.MemoryBytes
		}
		res, err := runWatched(ctx, req.Hook, lim, c)
		c.claims.take(req.Hook, res) // a hook that failed may have created some
		if err := enc.Encode(response{Result: res, Error: toWire(err)}); err != nil {
			return fmt.Errorf("write hook result: %w", err)
		}
	}
	return sc.Err()
}

// claims maps the machine paths outside their package dirs that hooks of
// a session created to their packages. (No other package's hook can reach
// a package dir: claiming paths there would only cost.) A child's owners,
// the paths installed.db gives to packages, take the same form.
type claims map[string]string

// take records what hook h did: the paths it created are its package's,
// the ones it removed nobody's.
func (c claims) take(h Hook, res Result) {
	for _, p := range res.Created {
		if !under(p, []string{h.PackageDir}) {
			c[p] = h.Package
		}
	}
	for _, p := range res.Removed {
		delete(c, p)
	}
}

// limitMemory sets the GC's soft limit and RLIMIT_AS. The soft limit sits
// above the watchdog's so that the GC does not thrash before the watchdog
// notices a hook that really holds too much, and below RLIMIT_AS so that
// garbage alone never reaches it. The address space of a Go process is far
// larger than its heap (about 1.2 GiB at start-up here, with 6 MiB
// resident), hence its size at start-up plus a margin. The race detector
// maps shadow memory at fixed addresses and cannot run under RLIMIT_AS, so a
// -race build relies on the watchdog alone.
func limitMemory(base, limit uint64) error {
	debug.SetMemoryLimit(int64(limit + limit/2))
	if raceEnabled || base == 0 {
		return nil
	}
	if err := setAddressSpaceLimit(base + 2*limit); err != nil {
		return fmt.Errorf("set RLIMIT_AS: %w", err)
	}
	return nil
}

// runWatched runs one hook while a watchdog samples the heap every
// memoryPoll and cancels the hook (with ErrMemoryLimit as the cause) once it
// passes the limit. The watchdog is a timer, not a goroutine: a hook that
// ends within the first period, as most do, never starts one.
func runWatched(ctx context.Context, h Hook, lim Limits, c carried) (Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &memoryWatch{cancel: cancel, limit: lim.MemoryBytes}
	w.mu.Lock()
	w.timer = time.AfterFunc(memoryPoll, w.check)
	w.mu.Unlock()
	res, err := run(ctx, h, lim, c)
	w.stop()
	return res, err
}

// memoryWatch is the watchdog of one hook.
type memoryWatch struct {
	cancel context.CancelCauseFunc
	limit  uint64

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func (w *memoryWatch) check() {
	if heapBytes() > w.limit {
		// The sample counts garbage not yet swept (this hook's or an
		// earlier one's): collect before blaming the hook.
		runtime.GC()
		if heapBytes() > w.limit {
			w.cancel(&limitError{ErrMemoryLimit, fmt.Sprintf("%d MiB", w.limit>>20)})
			return
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.timer.Reset(memoryPoll)
	}
}

func (w *memoryWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

// heapBytes is the size of the heap's objects, live or not yet swept.
func heapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

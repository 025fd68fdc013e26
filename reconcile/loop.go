package reconcile

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// ErrTerminal marks errors that retrying cannot fix (invalid state, bad
// signature, digest mismatch): the loop waits for the next trigger instead of
// backing off. Callers wrap with Terminal(err).
var ErrTerminal = errors.New("terminal")

// Terminal wraps err so that errors.Is(err, ErrTerminal) holds, while its
// message and its chain (errors.As finds the typed errors inside) are
// unchanged. Terminal(nil) is nil.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

type terminalError struct{ err error }

func (e *terminalError) Error() string   { return e.err.Error() }
func (e *terminalError) Unwrap() []error { return []error{e.err, ErrTerminal} }

// The causes a LoopEvent names. Trigger senders use TriggerChange (the state
// files changed) and TriggerSignal (SIGHUP); the loop itself uses the others.
const (
	TriggerStart  = "start"  // the run Loop begins with
	TriggerChange = "change" // a file watcher saw the state change
	TriggerSignal = "signal" // the operator asked (SIGHUP)
	TriggerResync = "resync" // LoopConfig.Resync passed without a run
	TriggerRetry  = "retry"  // the backoff after a transient failure ended
)

// LoopConfig tunes Loop. The zero value is usable: every zero field takes its
// default.
type LoopConfig struct {
	// Debounce is the quiet time after the last trigger before a run
	// (default 300ms): an editor's write-rename-chmod burst becomes one run.
	Debounce time.Duration
	// Resync runs again when this long has passed since the end of the last
	// run, so drift (a file deleted by hand) is repaired without a trigger.
	// Zero or negative turns it off.
	Resync time.Duration
	// BackoffMin and BackoffMax bound the wait before retrying a transient
	// failure (defaults 1s and 5m): the n-th consecutive failure waits
	// min(BackoffMin·2ⁿ⁻¹, BackoffMax), shortened by a jitter of up to half.
	BackoffMin, BackoffMax time.Duration
	// Rand is the jitter source, returning values in [0, 1); nil means
	// math/rand/v2. 0 means no jitter: tests pass a fixed function.
	Rand func() float64
	// Logger receives one record per run (nil discards).
	Logger *slog.Logger
}

// RunFunc is one level-triggered reconcile: re-read the state files and
// installed.db, plan, apply. It reports whether it changed the machine. It
// must not act on what caused it: the loop does not even tell it.
type RunFunc func(ctx context.Context) (changed bool, err error)

// LoopEvent reports one finished run.
type LoopEvent struct {
	Run     int    // 1 for the first run, counting up
	Trigger string // what caused the run: one of the Trigger constants, or the cause a trigger sent
	Changed bool   // the run changed the machine
	Err     error  // what the run returned
	// Next is the backoff before the retry that Err scheduled; 0 when no
	// retry is scheduled (success, terminal error, stopping, or a trigger
	// already pending).
	Next time.Duration
}

// LoopEventJSON is the stable NDJSON shape of a LoopEvent (packets watch
// --json writes one per line).
type LoopEventJSON struct {
	FormatVersion int       `json:"format_version"`
	Type          string    `json:"type"` // always "run"
	Run           int       `json:"run"`
	Trigger       string    `json:"trigger"`
	Changed       bool      `json:"changed"`
	Error         string    `json:"error,omitempty"`
	RetryIn       string    `json:"retry_in,omitempty"` // a Go duration, "2s"
	Time          time.Time `json:"time"`
}

// JSON returns e in its stable JSON shape, stamped with now.
func (e LoopEvent) JSON(now time.Time) LoopEventJSON {
	j := LoopEventJSON{FormatVersion: JSONVersion, Type: "run", Run: e.Run, Trigger: e.Trigger, Changed: e.Changed, Time: now}
	if e.Err != nil {
		j.Error = e.Err.Error()
	}
	if e.Next > 0 {
		j.RetryIn = e.Next.String()
	}
	return j
}

type runIDKey struct{}

// RunID returns the number of the loop run that ctx belongs to (the Run of
// its LoopEvent), or 0 outside a loop run. RunFuncs use it to tag their logs
// (run=<id>) and their per-action events.
func RunID(ctx context.Context) int {
	n, _ := ctx.Value(runIDKey{}).(int)
	return n
}

// Loop keeps the machine converged. It runs once at start, then once per
// burst of triggers, per resync and per retry, never two runs at a time:
//
//   - A trigger (each send names its cause, e.g. TriggerChange) starts the
//     Debounce wait; more triggers restart it, and the whole burst becomes one
//     run, named after its first cause. Triggers keep being received during a
//     run: a burst that ends while a run is in progress runs right after it,
//     so no change is lost. A trigger cancels a pending retry (and resync)
//     and resets the backoff: the operator changed something, try it now.
//   - A run that fails with a transient error is retried after a capped
//     exponential backoff with jitter; success resets the backoff. An error
//     wrapping ErrTerminal, or context.Canceled, is not retried: the loop waits
//     for the next trigger (or resync).
//   - Resync runs after LoopConfig.Resync without any run, also after a
//     terminal error (a broken state file keeps the last good state applied,
//     which can still drift); it waits while a retry or a burst is pending.
//
// Loop receives from triggers at all times, also during a run, so senders
// (the fsnotify adapter, the SIGHUP handler) may use an unbuffered channel; a
// nil channel means no triggers (only the start run, resyncs and retries).
// events, when not nil, is called after every run, from the loop's goroutine.
// The run gets ctx itself (with RunID): cancelling ctx reaches a run in
// progress, which is expected to stop where it safely can (Apply protects its
// commit point). Loop then waits for that run, reports it, and returns nil.
// Closing triggers also stops the loop: a burst already received still runs
// first, pending retries and resyncs do not. The only error Loop returns is
// for a nil run.
func Loop(ctx context.Context, cfg LoopConfig, triggers <-chan string, run RunFunc, events func(LoopEvent)) error {
	if run == nil {
		return errors.New("reconcile loop: nil run func")
	}
	l := newLoop(cfg, run, events)
	defer l.stopTimers()
	l.due = TriggerStart
	for {
		// 1. stop before starting anything new once ctx is done
		if ctx.Err() != nil {
			l.wait()
			return nil
		}
		// 2. start the due run, unless one is in progress
		if !l.running && l.due != "" {
			l.start(ctx)
		}
		if l.closed && !l.running {
			return nil
		}
		// 3. wait for whatever comes next
		select {
		case <-ctx.Done():
		case cause, ok := <-triggers:
			if !ok {
				triggers, l.closed = nil, true
				l.flush()
				continue
			}
			l.trigger(cause)
		case <-l.debounce.c:
			l.debounce.c = nil
			l.flush()
		case <-l.retry.c:
			l.retry.c = nil
			l.due = TriggerRetry
		case <-l.resync.c:
			l.resync.c = nil
			l.due = TriggerResync
		case r := <-l.done:
			l.finished(ctx, r)
		}
	}
}

// loop is Loop's state. Only Loop's goroutine touches it; the run's goroutine
// only sends on done.
type loop struct {
	cfg    LoopConfig
	run    RunFunc
	events func(LoopEvent)
	log    *slog.Logger

	runs     int    // runs started
	failures int    // consecutive transient failures since the last success or trigger
	burst    string // cause of the burst being debounced, "" when none
	due      string // cause of the run to start as soon as none is in progress
	running  bool
	closed   bool   // the trigger channel was closed: stop after the due runs
	current  string // cause of the run in progress
	started  time.Time
	done     chan runResult
	debounce alarm
	retry    alarm
	resync   alarm
}

type runResult struct {
	changed bool
	err     error
}

func newLoop(cfg LoopConfig, run RunFunc, events func(LoopEvent)) *loop {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 300 * time.Millisecond
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if events == nil {
		events = func(LoopEvent) {}
	}
	return &loop{cfg: cfg, run: run, events: events, log: cfg.Logger, done: make(chan runResult, 1)}
}

// trigger records one trigger: it starts or extends the burst, and cancels a
// pending retry and resync, which the burst's run replaces.
func (l *loop) trigger(cause string) {
	// a burst whose debounce ended during the run in progress (due) is not
	// over after all: fold it back so the new trigger's quiet time counts too
	l.burst = cmp.Or(l.burst, l.due, cause, TriggerChange)
	l.due = ""
	l.debounce.set(l.cfg.Debounce)
	l.retry.stop()
	l.resync.stop()
	l.failures = 0
}

// flush makes the pending burst, if any, due now.
func (l *loop) flush() {
	l.debounce.stop()
	if l.burst != "" {
		l.due, l.burst = l.burst, ""
	}
}

// start runs the due run in its own goroutine, so triggers keep being
// received (and debounced) while it works.
func (l *loop) start(ctx context.Context) {
	l.runs++
	l.running, l.current, l.due = true, l.due, ""
	l.started = time.Now()
	rctx := context.WithValue(ctx, runIDKey{}, l.runs)
	go func() {
		changed, err := l.run(rctx)
		l.done <- runResult{changed: changed, err: err}
	}()
}

// wait lets the run in progress, if any, finish and reports it.
func (l *loop) wait() {
	if l.running {
		l.report(<-l.done, 0)
	}
}

// finished handles the end of a run: it schedules the retry or the resync
// that follows, then reports the run.
func (l *loop) finished(ctx context.Context, r runResult) {
	var next time.Duration
	switch {
	case r.err == nil || errors.Is(r.err, ErrTerminal) || errors.Is(r.err, context.Canceled):
		l.failures = 0
	case ctx.Err() != nil, l.closed, l.burst != "", l.due != "":
		// stopping, or a trigger came during the run: its run comes next
	default:
		next = backoffDelay(l.cfg.BackoffMin, l.cfg.BackoffMax, l.failures, l.cfg.Rand())
		l.failures++
		l.retry.set(next)
	}
	if l.cfg.Resync > 0 && next == 0 && l.burst == "" && l.due == "" {
		l.resync.set(l.cfg.Resync)
	}
	l.report(r, next)
}

func (l *loop) report(r runResult, next time.Duration) {
	l.running = false
	ev := LoopEvent{Run: l.runs, Trigger: l.current, Changed: r.changed, Err: r.err, Next: next}
	log := l.log.With("run", ev.Run, "trigger", ev.Trigger, "changed", ev.Changed, "dur", time.Since(l.started))
	switch {
	case r.err == nil:
		log.Info("reconcile run done")
	case next > 0:
		log.Error("reconcile run failed", "err", r.err, "retry_in", next)
	default:
		log.Error("reconcile run failed", "err", r.err)
	}
	l.events(ev)
}

func (l *loop) stopTimers() {
	l.debounce.stop()
	l.retry.stop()
	l.resync.stop()
}

// backoffDelay is the wait before retrying after the (failures+1)-th
// consecutive transient failure: lo·2^failures capped at hi, times a jitter
// factor 1-r/2 in (0.5, 1] for r in [0, 1).
func backoffDelay(lo, hi time.Duration, failures int, r float64) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if !(r > 0 && r < 1) { // also rejects NaN
		r = 0
	}
	return time.Duration(float64(d) * (1 - r/2))
}

// alarm is a one-shot timer whose channel is nil while it is not armed, so a
// select on c simply never fires. Since Go 1.23, Reset and Stop guarantee no
// stale tick is received afterwards.
type alarm struct {
	t *time.Timer
	c <-chan time.Time
}

func (a *alarm) set(d time.Duration) {
	if a.t == nil {
		a.t = time.NewTimer(d)
	} else {
		a.t.Reset(d)
	}
	a.c = a.t.C
}

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
	a.c = nil
}

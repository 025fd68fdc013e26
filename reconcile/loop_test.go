package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loopStep scripts one run of a loop scenario.
type loopStep struct {
	changed bool
	err     error
	took    time.Duration // virtual time the run takes
	block   bool          // run until ctx is cancelled, then return err (or ctx's error)
}

// loopSend is one trigger sent at a virtual time; close closes the channel.
type loopSend struct {
	at    time.Duration
	cause string
	close bool
}

// loopRecord is a LoopEvent as the tests compare it, stamped with the virtual
// time it was reported at.
type loopRecord struct {
	At      time.Duration
	Run     int
	Trigger string
	Changed bool
	Err     string
	Next    time.Duration
}

type loopScenario struct {
	name  string
	cfg   LoopConfig
	sends []loopSend
	steps []loopStep    // by run, then successful no-op runs
	stop  time.Duration // cancel the context at this time (0: never)
	end   time.Duration // when Loop must have returned (0: stop)
	want  []loopRecord
}

var errTransient = errors.New("mirror: 503 service unavailable")

func sends(cause string, ats ...time.Duration) []loopSend {
	out := make([]loopSend, len(ats))
	for i, at := range ats {
		out[i] = loopSend{at: at, cause: cause}
	}
	return out
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestLoop(t *testing.T) {
	var burst []time.Duration
	for i := range 10 {
		burst = append(burst, time.Second+ms(10*i))
	}
	noJitter := func() float64 { return 0 }
	fail := loopStep{err: errTransient}
	tests := []loopScenario{{
		name: "start runs once, nothing else without triggers",
		stop: time.Hour,
		want: []loopRecord{{At: 0, Run: 1, Trigger: "start"}},
	}, {
		name:  "a burst of 10 triggers within the window is one run",
		sends: sends("change", burst...),
		steps: []loopStep{{}, {changed: true}},
		stop:  time.Hour,
		want:  []loopRecord{{Run: 1, Trigger: "start"}, {At: ms(1390), Run: 2, Trigger: "change", Changed: true}},
	}, {
		name:  "two bursts further apart than the window are two runs",
		sends: sends("change", ms(1000), ms(1100), ms(2000), ms(2100)),
		stop:  time.Hour,
		want:  []loopRecord{{Run: 1, Trigger: "start"}, {At: ms(1400), Run: 2, Trigger: "change"}, {At: ms(2400), Run: 3, Trigger: "change"}},
	}, {
		name:  "a burst is named after its first cause",
		sends: append(sends("signal", ms(1000)), loopSend{at: ms(1100), cause: "change"}, loopSend{at: ms(3000)}),
		stop:  time.Hour,
		want:  []loopRecord{{Run: 1, Trigger: "start"}, {At: ms(1400), Run: 2, Trigger: "signal"}, {At: ms(3300), Run: 3, Trigger: "change"}},
	}, {
		name:  "debounce is configurable",
		cfg:   LoopConfig{Debounce: ms(50)},
		sends: sends("change", ms(1000), ms(1040), ms(1080)),
		stop:  time.Hour,
		want:  []loopRecord{{Run: 1, Trigger: "start"}, {At: ms(1130), Run: 2, Trigger: "change"}},
	}, {
		name:  "transient failures retry at 1s, 2s, 4s, 8s, then capped",
		cfg:   LoopConfig{BackoffMax: 8 * time.Second, Rand: noJitter},
		steps: []loopStep{fail, fail, fail, fail, fail, fail, {changed: true}},
		stop:  time.Hour,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: time.Second},
			{At: 1 * time.Second, Run: 2, Trigger: "retry", Err: errTransient.Error(), Next: 2 * time.Second},
			{At: 3 * time.Second, Run: 3, Trigger: "retry", Err: errTransient.Error(), Next: 4 * time.Second},
			{At: 7 * time.Second, Run: 4, Trigger: "retry", Err: errTransient.Error(), Next: 8 * time.Second},
			{At: 15 * time.Second, Run: 5, Trigger: "retry", Err: errTransient.Error(), Next: 8 * time.Second},
			{At: 23 * time.Second, Run: 6, Trigger: "retry", Err: errTransient.Error(), Next: 8 * time.Second},
			{At: 31 * time.Second, Run: 7, Trigger: "retry", Changed: true},
		},
	}, {
		name:  "jitter shortens the wait by up to half",
		cfg:   LoopConfig{Rand: func() float64 { return 0.5 }},
		steps: []loopStep{fail, fail},
		stop:  time.Hour,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: ms(750)},
			{At: ms(750), Run: 2, Trigger: "retry", Err: errTransient.Error(), Next: ms(1500)},
			{At: ms(2250), Run: 3, Trigger: "retry"},
		},
	}, {
		name:  "success resets the backoff",
		cfg:   LoopConfig{Resync: time.Minute, Rand: noJitter},
		steps: []loopStep{fail, fail, {}, fail},
		stop:  100 * time.Second,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: time.Second},
			{At: time.Second, Run: 2, Trigger: "retry", Err: errTransient.Error(), Next: 2 * time.Second},
			{At: 3 * time.Second, Run: 3, Trigger: "retry"},
			{At: 63 * time.Second, Run: 4, Trigger: "resync", Err: errTransient.Error(), Next: time.Second},
			{At: 64 * time.Second, Run: 5, Trigger: "retry"},
		},
	}, {
		name:  "a change during the backoff cancels the retry",
		cfg:   LoopConfig{Rand: noJitter},
		steps: []loopStep{fail},
		sends: sends("change", ms(900)),
		stop:  time.Hour,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: time.Second},
			{At: ms(1200), Run: 2, Trigger: "change"},
		},
	}, {
		name:  "a change during the backoff runs after the debounce and resets the backoff",
		cfg:   LoopConfig{BackoffMin: 10 * time.Second, Rand: noJitter},
		steps: []loopStep{fail, fail, fail},
		sends: sends("change", 15*time.Second),
		stop:  time.Hour,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: 10 * time.Second},
			{At: 10 * time.Second, Run: 2, Trigger: "retry", Err: errTransient.Error(), Next: 20 * time.Second},
			{At: ms(15300), Run: 3, Trigger: "change", Err: errTransient.Error(), Next: 10 * time.Second},
			{At: ms(25300), Run: 4, Trigger: "retry"},
		},
	}, {
		name:  "a terminal failure is not retried; the next change runs",
		steps: []loopStep{{err: Terminal(errors.New("state.hcl:3: unknown attribute"))}},
		sends: sends("change", time.Hour),
		stop:  2 * time.Hour,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: "state.hcl:3: unknown attribute"},
			{At: time.Hour + ms(300), Run: 2, Trigger: "change"},
		},
	}, {
		name:  "context.Canceled from a run is not retried",
		steps: []loopStep{{err: fmt.Errorf("fetch: %w", context.Canceled)}},
		stop:  time.Hour,
		want:  []loopRecord{{At: 0, Run: 1, Trigger: "start", Err: "fetch: context canceled"}},
	}, {
		name: "resync runs periodically",
		cfg:  LoopConfig{Resync: 5 * time.Minute},
		stop: 16 * time.Minute,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start"},
			{At: 5 * time.Minute, Run: 2, Trigger: "resync"},
			{At: 10 * time.Minute, Run: 3, Trigger: "resync"},
			{At: 15 * time.Minute, Run: 4, Trigger: "resync"},
		},
	}, {
		name:  "resync counts from the end of the last run",
		cfg:   LoopConfig{Resync: 5 * time.Minute},
		steps: []loopStep{{}, {took: time.Minute}},
		sends: sends("change", 3*time.Minute),
		stop:  10 * time.Minute,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start"},
			{At: 4*time.Minute + ms(300), Run: 2, Trigger: "change"},
			{At: 9*time.Minute + ms(300), Run: 3, Trigger: "resync"},
		},
	}, {
		name:  "a change replaces the resync due during its debounce",
		cfg:   LoopConfig{Resync: time.Second},
		sends: sends("change", ms(900)),
		stop:  ms(2500),
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start"},
			{At: ms(1200), Run: 2, Trigger: "change"},
			{At: ms(2200), Run: 3, Trigger: "resync"},
		},
	}, {
		name:  "resync waits while a retry is pending",
		cfg:   LoopConfig{Resync: 2 * time.Second, BackoffMin: 5 * time.Second, Rand: noJitter},
		steps: []loopStep{fail},
		stop:  8 * time.Second,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: 5 * time.Second},
			{At: 5 * time.Second, Run: 2, Trigger: "retry"},
			{At: 7 * time.Second, Run: 3, Trigger: "resync"},
		},
	}, {
		name:  "resync goes on after a terminal failure",
		cfg:   LoopConfig{Resync: 5 * time.Minute},
		steps: []loopStep{{err: Terminal(errTransient)}},
		stop:  6 * time.Minute,
		want: []loopRecord{
			{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error()},
			{At: 5 * time.Minute, Run: 2, Trigger: "resync"},
		},
	}, {
		name:  "a trigger during a run is not lost",
		steps: []loopStep{{took: time.Second}},
		sends: sends("change", ms(500)),
		stop:  time.Hour,
		want:  []loopRecord{{At: time.Second, Run: 1, Trigger: "start"}, {At: time.Second, Run: 2, Trigger: "change"}},
	}, {
		name:  "a trigger late in a run still waits for its quiet time",
		steps: []loopStep{{took: time.Second}},
		sends: sends("change", ms(900)),
		stop:  time.Hour,
		want:  []loopRecord{{At: time.Second, Run: 1, Trigger: "start"}, {At: ms(1200), Run: 2, Trigger: "change"}},
	}, {
		name:  "a burst spanning the end of a run is one run",
		steps: []loopStep{{took: time.Second}},
		sends: append(sends("signal", ms(500)), loopSend{at: ms(950), cause: "change"}),
		stop:  time.Hour,
		want:  []loopRecord{{At: time.Second, Run: 1, Trigger: "start"}, {At: ms(1250), Run: 2, Trigger: "signal"}},
	}, {
		name:  "a transient failure with a trigger pending runs the trigger instead of backing off",
		steps: []loopStep{{took: time.Second, err: errTransient}},
		sends: sends("change", ms(500)),
		stop:  time.Hour,
		want: []loopRecord{
			{At: time.Second, Run: 1, Trigger: "start", Err: errTransient.Error()},
			{At: time.Second, Run: 2, Trigger: "change"},
		},
	}, {
		name: "cancel while idle returns at once",
		cfg:  LoopConfig{Resync: time.Minute},
		stop: ms(10500),
		want: []loopRecord{{At: 0, Run: 1, Trigger: "start"}},
	}, {
		name:  "cancel during the debounce does not run",
		sends: sends("change", ms(1000)),
		stop:  ms(1100),
		want:  []loopRecord{{At: 0, Run: 1, Trigger: "start"}},
	}, {
		name:  "cancel during a run waits for it and reports it",
		steps: []loopStep{{block: true}},
		stop:  10 * time.Second,
		want:  []loopRecord{{At: 10 * time.Second, Run: 1, Trigger: "start", Err: "context canceled"}},
	}, {
		name:  "cancel during a run schedules no retry",
		steps: []loopStep{{block: true, err: errTransient}},
		stop:  10 * time.Second,
		want:  []loopRecord{{At: 10 * time.Second, Run: 1, Trigger: "start", Err: errTransient.Error()}},
	}, {
		name:  "closing the triggers runs the pending burst, then returns",
		sends: append(sends("change", ms(1000)), loopSend{at: ms(1100), close: true}),
		end:   ms(1100),
		want:  []loopRecord{{At: 0, Run: 1, Trigger: "start"}, {At: ms(1100), Run: 2, Trigger: "change"}},
	}, {
		name:  "closing the triggers abandons a pending retry",
		cfg:   LoopConfig{Rand: noJitter},
		steps: []loopStep{fail},
		sends: []loopSend{{at: ms(500), close: true}},
		end:   ms(500),
		want:  []loopRecord{{At: 0, Run: 1, Trigger: "start", Err: errTransient.Error(), Next: time.Second}},
	}, {
		name:  "closing the triggers during a run lets it finish without a retry",
		steps: []loopStep{{took: time.Second, err: errTransient}},
		sends: []loopSend{{at: ms(500), close: true}},
		end:   time.Second,
		want:  []loopRecord{{At: time.Second, Run: 1, Trigger: "start", Err: errTransient.Error()}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got, end := runLoopScenario(t, tt)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
				if want := max(tt.end, tt.stop); end != want {
					t.Errorf("Loop returned at %v, want %v", end, want)
				}
			})
		})
	}
}

// runLoopScenario runs Loop inside the caller's synctest bubble, sends the
// scenario's triggers at their virtual times, cancels at sc.stop, and returns
// the events and the virtual time Loop returned at. It fails the test if two
// runs overlap or a run sees the wrong RunID.
func runLoopScenario(t *testing.T, sc loopScenario) ([]loopRecord, time.Duration) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	var calls, active atomic.Int32
	run := func(ctx context.Context) (bool, error) {
		if active.Add(1) > 1 {
			t.Error("two runs at once")
		}
		defer active.Add(-1)
		i := int(calls.Add(1))
		if id := RunID(ctx); id != i {
			t.Errorf("run %d: RunID = %d", i, id)
		}
		var s loopStep
		if i <= len(sc.steps) {
			s = sc.steps[i-1]
		}
		if s.block {
			<-ctx.Done()
			if s.err != nil {
				return s.changed, s.err
			}
			return s.changed, ctx.Err()
		}
		time.Sleep(s.took)
		return s.changed, s.err
	}
	var got []loopRecord
	record := func(e LoopEvent) {
		r := loopRecord{At: time.Since(start), Run: e.Run, Trigger: e.Trigger, Changed: e.Changed, Next: e.Next}
		if e.Err != nil {
			r.Err = e.Err.Error()
		}
		got = append(got, r)
	}
	triggers := make(chan string)
	done := make(chan error, 1)
	go func() { done <- Loop(ctx, sc.cfg, triggers, run, record) }()
	for _, s := range sc.sends {
		time.Sleep(time.Until(start.Add(s.at)))
		if s.close {
			close(triggers)
			continue
		}
		triggers <- s.cause
	}
	if sc.stop > 0 {
		time.Sleep(time.Until(start.Add(sc.stop)))
		cancel()
	}
	if err := <-done; err != nil {
		t.Errorf("Loop = %v, want nil", err)
	}
	return got, time.Since(start)
}

func TestLoopBackoffDelay(t *testing.T) {
	tests := []struct {
		name     string
		lo, hi   time.Duration
		failures int
		r        float64
		want     time.Duration
	}{
		{"first failure waits the minimum", time.Second, time.Minute, 0, 0, time.Second},
		{"doubles", time.Second, time.Minute, 3, 0, 8 * time.Second},
		{"capped", time.Second, time.Minute, 6, 0, time.Minute},
		{"no overflow after many failures", time.Second, 5 * time.Minute, 1000, 0, 5 * time.Minute},
		{"jitter takes up to half", 4 * time.Second, time.Minute, 0, 0.5, 3 * time.Second},
		{"jitter applies after the cap", time.Second, 8 * time.Second, 10, 0.25, 7 * time.Second},
		{"out-of-range jitter is ignored", time.Second, time.Minute, 1, 1.5, 2 * time.Second},
		{"negative jitter is ignored", time.Second, time.Minute, 1, -1, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoffDelay(tt.lo, tt.hi, tt.failures, tt.r); got != tt.want {
				t.Errorf("backoffDelay(%v, %v, %d, %v) = %v, want %v", tt.lo, tt.hi, tt.failures, tt.r, got, tt.want)
			}
		})
	}
}

func TestLoopTerminal(t *testing.T) {
	inner := &fs.PathError{Op: "open", Path: "/var/cache/packets/ab.tar.zst", Err: fs.ErrPermission}
	err := fmt.Errorf("apply: %w", Terminal(inner))
	if !errors.Is(err, ErrTerminal) {
		t.Errorf("errors.Is(%v, ErrTerminal) = false", err)
	}
	if got, want := err.Error(), "apply: "+inner.Error(); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != inner {
		t.Errorf("errors.As did not find the wrapped *fs.PathError")
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("errors.Is(%v, fs.ErrPermission) = false", err)
	}
	if errors.Is(inner, ErrTerminal) {
		t.Errorf("the unwrapped error is terminal")
	}
	if Terminal(nil) != nil {
		t.Errorf("Terminal(nil) != nil")
	}
}

func TestLoopEventJSON(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ev   LoopEvent
		want string
	}{
		{"success keeps changed false", LoopEvent{Run: 1, Trigger: TriggerStart},
			`{"format_version":1,"type":"run","run":1,"trigger":"start","changed":false,"time":"2025-03-01T12:00:00Z"}`},
		{"changed", LoopEvent{Run: 2, Trigger: TriggerChange, Changed: true},
			`{"format_version":1,"type":"run","run":2,"trigger":"change","changed":true,"time":"2025-03-01T12:00:00Z"}`},
		{"failure with retry", LoopEvent{Run: 3, Trigger: TriggerRetry, Err: errTransient, Next: 2 * time.Second},
			`{"format_version":1,"type":"run","run":3,"trigger":"retry","changed":false,"error":"mirror: 503 service unavailable","retry_in":"2s","time":"2025-03-01T12:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.ev.JSON(at))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(b)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoopLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
		cfg := LoopConfig{Logger: slog.New(h), Rand: func() float64 { return 0 }}
		runs := 0
		run := func(context.Context) (bool, error) {
			runs++
			if runs == 1 {
				return false, errTransient
			}
			return true, nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Loop(ctx, cfg, nil, run, nil) }()
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Loop = %v", err)
		}
		want := `level=ERROR msg="reconcile run failed" run=1 trigger=start changed=false dur=0s err="mirror: 503 service unavailable" retry_in=1s
level=INFO msg="reconcile run done" run=2 trigger=retry changed=true dur=0s
`
		if diff := cmp.Diff(want, buf.String()); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
	})
}

func TestLoopCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := Loop(ctx, LoopConfig{}, nil, func(context.Context) (bool, error) { ran = true; return false, nil }, nil)
	if err != nil || ran {
		t.Errorf("Loop on a cancelled context = %v and ran = %v, want nil and no run", err, ran)
	}
}

func TestLoopNilRun(t *testing.T) {
	if err := Loop(t.Context(), LoopConfig{}, nil, nil, nil); err == nil {
		t.Error("Loop with a nil run func = nil, want an error")
	}
}

package lua

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Runner starts sandbox children.
type Runner struct {
	// Command is the argv of a child speaking the protocol: in packets,
	// the packets binary with the hidden subcommand `__hook-child`, whose
	// main calls ServeChild(ctx, os.Stdin, os.Stdout).
	Command []string
	// Env is added to the parent's environment for the child.
	Env []string
	// Limits apply to every hook; zero fields take the defaults.
	Limits Limits
	// Logger gets the child's lifecycle (Debug). What hooks print is
	// returned in Result.Output, for the caller to log. Nil discards.
	Logger *slog.Logger
}

// startTimeout bounds the child's start-up, up to its hello.
const startTimeout = 30 * time.Second

// stderrHead is how much of the child's stderr during one hook is kept to
// explain its death: the start, where a Go runtime puts the fatal error
// before the goroutine dump.
const stderrHead = 8 << 10

// Session is one sandbox child running hooks in turn. It is safe for
// concurrent use; hooks run one at a time, in the order they are sent.
type Session struct {
	r   *Runner
	log *slog.Logger

	mu     sync.Mutex
	c      *child     // nil after a kill: the next hook starts a fresh one
	queue  []*Pending // sent, results not read yet, in order
	closed bool
	// claims are those of the results read since the session was last
	// idle (every hook sent read): for a child started after a kill.
	claims claims
	owners claims // SetOwners'
}

// Pending is a hook sent with Send whose result Wait reads.
type Pending struct {
	s *Session
	h Hook
	// c is the child the request was written to; nil while it waits to be
	// written (at most one hook is written ahead of the one running), or
	// a child since killed, before it could start it: it is written again.
	c    *child
	done bool
	res  Result
	err  error
}

// aheadMax bounds the request written to the child while the hook before
// it runs: one such request fits in a pipe of the usual 64 KiB, so its
// write is done at once. A larger request (a hook of up to 1 MiB) waits
// until the hooks before it are done.
const aheadMax = 16 << 10

// child is one running sandbox process.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte   // what it writes; one message at a time
	stop    chan struct{} // closed by kill: nobody reads lines any more
	stopped sync.Once
	stderr  *headBuffer
	claimed bool // its claims are the session's: a request carried them, or results since
	owned   bool // it has the session's owners: a request carried them
	// lastWrite is closed when the last request written ahead is in the
	// pipe (Session.mu guards the field).
	lastWrite chan struct{}
	exited    chan struct{} // closed once it has been waited for
	waitErr   error         // set before exited is closed
}

// Start starts a child and waits for it to be ready. ctx bounds the start-up
// only; the child lives until Close.
func (r *Runner) Start(ctx context.Context) (*Session, error) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{r: r, log: log}
	c, err := s.start(ctx)
	if err != nil {
		return nil, err
	}
	s.c = c
	return s, nil
}

func (s *Session) start(ctx context.Context) (*child, error) {
	if len(s.r.Command) == 0 {
		return nil, errors.New("start hook sandbox: empty command")
	}
	begin := time.Now()
	cmd := exec.Command(s.r.Command[0], s.r.Command[1:]...)
	cmd.Env = append(os.Environ(), s.r.Env...)
	cmd.SysProcAttr = childAttr()
	c := &child{cmd: cmd, lines: make(chan []byte, 1), stop: make(chan struct{}), stderr: &headBuffer{max: stderrHead}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start hook sandbox: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start hook sandbox: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start hook sandbox: %w", err)
	}
	c.stdin = stdin
	go c.read(stdout)

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var h hello
	select {
	case line, ok := <-c.lines:
		if !ok {
			return nil, fmt.Errorf("start hook sandbox: %w", c.deathError())
		}
		if err := json.Unmarshal(line, &h); err != nil || h.PacketsHookChild != protocolVersion {
			s.kill(c)
			return nil, fmt.Errorf("start hook sandbox: unexpected hello %.100q", line)
		}
	case <-ctx.Done():
		s.kill(c)
		return nil, fmt.Errorf("start hook sandbox: %w", context.Cause(ctx))
	}
	s.log.Debug("hook sandbox started", "pid", cmd.Process.Pid, "dur", time.Since(begin))
	return c, nil
}

// writeAfter writes msg to the child's stdin from a goroutine, once the
// write before it (if any) is done, so that requests never interleave.
func (c *child) writeAfter(msg []byte) {
	prev, done := c.lastWrite, make(chan struct{})
	c.lastWrite = done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		_, _ = c.stdin.Write(msg)
	}()
}

// read passes the child's stdout on until it closes, then waits for the
// child.
func (c *child) read(stdout io.Reader) {
	c.forward(stdout)
	_, _ = io.Copy(io.Discard, stdout) // until the child is gone
	c.waitErr = c.cmd.Wait()
	close(c.exited)
	close(c.lines)
}

// forward passes lines on until stdout ends, the session stops listening, or
// a line is too long for the protocol (then the child is killed).
func (c *child) forward(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), maxMessageBytes)
	for sc.Scan() {
		select {
		case c.lines <- bytes.Clone(sc.Bytes()):
		case <-c.stop:
			return
		}
	}
	if sc.Err() != nil {
		_ = killGroup(c.cmd.Process.Pid)
	}
}

// Run runs one hook in the child and returns its result: Send, then Wait.
// A hook that passes its time limit gets its child killed; the next hook
// starts a fresh one. Every error is a *HookError.
func (s *Session) Run(ctx context.Context, h Hook) (Result, error) {
	return s.Send(ctx, h).Wait(ctx)
}

// SetOwners gives the machine paths that packages own (path -> package):
// from the next hook written to the child on, a hook may not write,
// remove or rename onto one that its package does not own. It is
// Hook.Protected for every hook at once, sent to the child once rather
// than with each hook (in packets, the bin dir's paths in installed.db,
// set again whenever installed.db changes). s keeps owners: the caller
// must not change it afterwards.
func (s *Session) SetOwners(owners map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners = owners
	if s.c != nil {
		s.c.owned = false
	}
}

// Send hands h to the child without waiting for it: when the hook before
// it is still running, the child finds h waiting as soon as it is done,
// instead of idling while the caller reads that result and prepares the
// next. Hooks run in the order they are sent, whatever order their
// results are read in; a hook sent to a child that was killed before it
// could start (the one before it timed out) is sent to the next child.
func (s *Session) Send(ctx context.Context, h Hook) *Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &Pending{s: s, h: h}
	if s.closed {
		p.finish(Result{}, errors.New("hook sandbox session closed"))
		return p
	}
	s.queue = append(s.queue, p)
	s.writeAhead(ctx)
	return p
}

// Wait returns the result of p's hook, after those of the hooks sent
// before it, under ctx (which, when it ends, kills the child running them).
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for !p.done {
		s.step(ctx)
	}
	return p.res, p.err
}

func (p *Pending) finish(res Result, err error) {
	p.done, p.res = true, res
	if err != nil {
		if _, ok := err.(*HookError); !ok {
			err = &HookError{Package: p.h.Package, Script: p.h.Script, Err: err}
		}
		p.err = err
	}
}

// written counts the queued hooks written to the current child.
func (s *Session) written() int {
	n := 0
	for _, p := range s.queue {
		if p.c != nil && p.c == s.c {
			n++
		}
	}
	return n
}

// writeAhead writes the next queued request when the child has at most
// the running hook before it, so that the child never waits for us. The
// write is made from a goroutine: a pipe smaller than two requests would
// otherwise block it, with the kill timer of the running hook not armed.
// A failed write is not p's error: the child is gone, and the running
// hook's result says why; p is then written again to the next child.
func (s *Session) writeAhead(ctx context.Context) {
	if s.c == nil || s.written() != 1 {
		return
	}
	for _, p := range s.queue {
		if p.c != s.c {
			if msg, err := s.request(p.h, s.c); err == nil && len(msg) <= aheadMax {
				p.c = s.c
				p.c.writeAfter(msg)
				p.c.claimed, p.c.owned = true, true
			}
			return
		}
	}
}

// request encodes h for child c, with the session's claims and owners
// unless c has them already (see the protocol's claims and owners).
func (s *Session) request(h Hook, c *child) ([]byte, error) {
	req := request{Hook: h, Limits: s.r.Limits.withDefaults()}
	if !c.claimed {
		req.Claims = s.claims
		if req.Claims == nil {
			req.Claims = claims{} // not null: the child's are replaced
		}
	}
	if !c.owned {
		req.Owners = s.owners
		if req.Owners == nil {
			req.Owners = claims{}
		}
	}
	msg, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode hook request: %w", err)
	}
	return append(msg, '\n'), nil
}

// step reads the result of the first queued hook, writing it to the child
// (started if need be) first unless it was written ahead.
func (s *Session) step(ctx context.Context) {
	p := s.queue[0]
	done := func(res Result, err error) {
		s.queue = s.queue[1:]
		p.finish(res, err)
		if len(s.queue) == 0 {
			s.idle()
		}
		s.writeAhead(ctx)
	}
	if p.c == nil || p.c != s.c { // not started
		if s.closed {
			done(Result{}, errors.New("hook sandbox session closed"))
			return
		}
		if ctx.Err() != nil { // do not start a child to kill it
			done(Result{}, context.Cause(ctx))
			return
		}
	}
	if s.c == nil {
		c, err := s.start(ctx)
		if err != nil {
			done(Result{}, err)
			return
		}
		s.c = c
	}
	c := s.c
	if p.c != c {
		msg, err := s.request(p.h, c)
		if err != nil {
			done(Result{}, err)
			return
		}
		c.stderr.reset() // keep what the child says during this hook
		if _, err := c.stdin.Write(msg); err != nil {
			// The child is gone; its death explains more than EPIPE does.
			s.kill(c)
			done(Result{}, c.deathError())
			return
		}
		p.c, c.claimed, c.owned = c, true, true
	}
	s.writeAhead(ctx)

	// The child stops a hook at its time limit by itself; kill it only if
	// it does not (a Go function looping in a pattern match, say).
	lim := s.r.Limits.withDefaults()
	timer := time.NewTimer(lim.Timeout + killGrace(lim.Timeout))
	defer timer.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			s.c = nil
			s.log.Debug("hook sandbox died", "pkg", p.h.Package, "hook", p.h.Script, "err", c.waitErr, "stderr", c.stderr.String())
			done(Result{}, c.deathError())
			return
		}
		c.stderr.reset() // what the child says from now on is the next hook's
		done(s.result(p.h, c, line))
	case <-timer.C:
		s.log.Debug("hook sandbox killed: time limit", "pkg", p.h.Package, "hook", p.h.Script, "timeout", lim.Timeout)
		s.kill(c)
		done(Result{}, &limitError{ErrTimeout, lim.Timeout.String()})
	case <-ctx.Done():
		s.kill(c)
		done(Result{}, context.Cause(ctx))
	}
}

func (s *Session) result(h Hook, c *child, line []byte) (Result, error) {
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		s.kill(c)
		return Result{}, &HookError{Package: h.Package, Script: h.Script, Err: fmt.Errorf("decode hook result: %w", err)}
	}
	if s.claims == nil {
		s.claims = claims{}
	}
	s.claims.take(h, resp.Result)
	if resp.Error != nil {
		err := resp.Error.hookError()
		if errors.Is(err, ErrMemoryLimit) {
			// The child stopped the hook, but its address space stays
			// spent (RLIMIT_AS counts what the runtime has mapped): the
			// next hook gets a fresh child.
			s.kill(c)
		}
		return resp.Result, err
	}
	return resp.Result, nil
}

// idle forgets the claims once every hook sent has been read: the caller
// records what its hooks made before it sends more (installed.Tx does), and
// from then on installed.db protects those paths (SetOwners). A
// claim kept longer would outlive a package that an apply then removes.
func (s *Session) idle() {
	s.claims = nil
	if s.c != nil {
		s.c.claimed = false
	}
}

// killGrace is how long after the time limit the parent waits for the child
// to report the timeout itself.
func killGrace(timeout time.Duration) time.Duration {
	return min(timeout/4, 2*time.Second)
}

// kill kills c and waits for it; the session will start a fresh child.
func (s *Session) kill(c *child) {
	c.stopped.Do(func() { close(c.stop) })
	_ = killGroup(c.cmd.Process.Pid)
	<-c.exited
	if s.c == c {
		s.c = nil
	}
	s.log.Debug("hook sandbox stopped", "pid", c.cmd.Process.Pid)
}

// deathError explains an unexpected exit: a Go runtime that could not get
// memory under RLIMIT_AS is the memory limit (it says "out of memory" when
// the heap cannot grow, "cannot allocate memory" when the mmap of its own
// structures fails: 2 to 5 runs in 100 of the growing-table escape test);
// anything else is reported with the end of the child's stderr.
func (c *child) deathError() error {
	tail := c.stderr.String()
	if strings.Contains(tail, "out of memory") || strings.Contains(tail, "runtime: cannot allocate memory") {
		return &limitError{ErrMemoryLimit, "the sandbox process ran out of address space"}
	}
	if i := strings.Index(tail, "\ngoroutine "); i >= 0 {
		tail = tail[:i] // the panic message, not the goroutine dump
	}
	return fmt.Errorf("hook sandbox died (%v): %s", c.waitErr, strings.TrimSpace(tail))
}

// Close stops the child: it closes its stdin, and kills it if it does not
// exit within a few seconds.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	c := s.c
	s.c = nil
	if c == nil {
		return nil
	}
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		s.kill(c)
		return errors.New("hook sandbox did not exit on close; killed")
	}
	if c.waitErr != nil {
		return fmt.Errorf("hook sandbox: %w: %s", c.waitErr, strings.TrimSpace(c.stderr.String()))
	}
	if ps := c.cmd.ProcessState; ps != nil {
		s.log.Debug("hook sandbox exited", "pid", ps.Pid(), "user", ps.UserTime(), "system", ps.SystemTime())
	}
	return nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *headBuffer) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = b.buf[:0]
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

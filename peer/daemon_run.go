package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// ReadyFDEnv names the environment variable through which Start hands the
// daemon a pipe (its value is the file descriptor, 3): the daemon writes
// "ready\n" to it once it listens and its pid file is written.
const ReadyFDEnv = "PACKETS_SERVE_READY_FD"

// Daemon is `packets serve`: a Server run in the foreground with a pid file.
type Daemon struct {
	Server  *Server
	PIDFile string // "" writes none
	// Listen binds the sockets; nil binds Server.Config's ports on 0.0.0.0
	// (see Server.ListenAndServe). Tests bind 127.0.0.1:0.
	Listen func(ctx context.Context) (net.PacketConn, net.Listener, error)
}

// Run binds the sockets, writes the pid file (refusing to run when another
// daemon holds it) and the ports file, tells whoever waits that it is
// ready (Start's pipe, systemd's NOTIFY_SOCKET for Type=notify), and serves
// until ctx is done. The pid and ports files are removed on the way out.
func (d *Daemon) Run(ctx context.Context) error {
	listen := d.Listen
	if listen == nil {
		listen = d.Server.listen
	}
	udp, ln, err := listen(ctx)
	if err != nil {
		return err
	}
	if d.PIDFile != "" {
		if err := d.writeFiles(udp.LocalAddr(), ln.Addr()); err != nil {
			udp.Close()
			ln.Close()
			return err
		}
		defer removePIDFile(d.PIDFile, os.Getpid())
	}
	log := d.Server.logger()
	if err := signalReady(); err != nil {
		log.Warn("could not tell the starter that the daemon is ready", "err", err)
	}
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("could not notify systemd", "err", err)
	}
	defer sdNotify("STOPPING=1")
	return d.Server.Serve(ctx, udp, ln)
}

func (d *Daemon) writeFiles(udp, http net.Addr) error {
	if err := WritePIDFile(d.PIDFile); err != nil {
		return err
	}
	if err := writePorts(PortsFile(d.PIDFile), udp, http); err != nil {
		removePIDFile(d.PIDFile, os.Getpid())
		return err
	}
	return nil
}

// listen binds the configured ports on 0.0.0.0.
func (s *Server) listen(ctx context.Context) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	udp, err := lc.ListenPacket(ctx, "udp4", ":"+strconv.Itoa(s.Config.udpPort()))
	if err != nil {
		return nil, nil, fmt.Errorf("peer discovery port: %w", err)
	}
	ln, err := lc.Listen(ctx, "tcp4", ":"+strconv.Itoa(s.Config.httpPort()))
	if err != nil {
		udp.Close()
		return nil, nil, fmt.Errorf("peer http port: %w", err)
	}
	return udp, ln, nil
}

// signalReady writes "ready" to the pipe Start passed, if any.
func signalReady() error {
	v := os.Getenv(ReadyFDEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("%s=%q: not a file descriptor", ReadyFDEnv, v)
	}
	f := os.NewFile(uintptr(fd), "ready")
	_, err = f.WriteString("ready\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sdNotify sends a state to systemd when it runs us as Type=notify.
func sdNotify(state string) error {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// StartOptions says how Start runs the daemon in the background.
type StartOptions struct {
	// Path is the executable; "" means this one (os.Executable).
	Path string
	// Args is the whole command line, program name first, e.g. {"packets",
	// "--root", "/", "serve"}: it must satisfy IsPacketsDaemon, or Stop
	// will not recognise the daemon.
	Args    []string
	PIDFile string // the pid file the daemon writes
	// LogFile receives the daemon's stdout and stderr (appended); ""
	// discards them.
	LogFile string
	Env     []string      // nil: this process's environment
	Timeout time.Duration // how long to wait for it to listen; 0: 10 s
}

// Start runs the daemon in the background (`packets serve init`), detached
// in its own session, and returns its pid once it listens and its pid file
// is written. It refuses with a *RunningError when a daemon already runs
// for the pid file. A daemon that exits or does not get ready within the
// timeout is an error (the latter is killed).
func Start(ctx context.Context, o StartOptions) (int, error) {
	if pid, err := ReadPIDFile(o.PIDFile); err == nil && IsPacketsDaemon(pid) {
		return pid, &RunningError{PID: pid, PIDFile: o.PIDFile}
	}
	cmd, ready, err := startDetached(o)
	if err != nil {
		return 0, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = fmt.Errorf("not listening after %s", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && !ws.Signaled() {
			err = fmt.Errorf("%w (%s)", err, cmd.ProcessState) // it exited by itself: say how
		}
		return 0, fmt.Errorf("start the peer daemon%s: %w", logHint(o.LogFile), err)
	}
	go cmd.Wait() // reap it if it ends while this process still runs
	return cmd.Process.Pid, nil
}

// startDetached starts the daemon with the ready pipe on fd 3 and returns
// a channel that says whether it got ready.
func startDetached(o StartOptions) (*exec.Cmd, <-chan error, error) {
	path := o.Path
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		path = exe
	}
	if len(o.Args) == 0 || o.PIDFile == "" {
		return nil, nil, errors.New("start the peer daemon: no command line or no pid file")
	}
	out, err := openLog(o.LogFile)
	if err != nil {
		return nil, nil, err
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	cmd := &exec.Cmd{
		Path: path, Args: o.Args, Env: append(env, ReadyFDEnv+"=3"),
		Stdout: out, Stderr: out, ExtraFiles: []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start the peer daemon: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		defer r.Close()
		line, _ := bufio.NewReader(r).ReadString('\n')
		if line != "ready\n" {
			ready <- errors.New("the daemon exited before it was listening")
			return
		}
		ready <- nil
	}()
	return cmd, ready, nil
}

func openLog(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

func logHint(path string) string {
	if path == "" {
		return ""
	}
	return " (its log: " + path + ")"
}

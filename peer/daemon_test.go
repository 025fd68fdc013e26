package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/fetch"
)

// Environment of the "daemon" role.
const (
	cacheEnv   = "PEER_TEST_CACHE"
	pidFileEnv = "PEER_TEST_PIDFILE"
)

// runRole is what the re-executed test binary does.
func runRole(role string) int {
	switch role {
	case "echo": // a long-lived process that proves it is alive by echoing
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			return 1
		}
		return 0
	case "fail":
		fmt.Fprintln(os.Stderr, "cannot start: the test said so")
		return 3
	case "daemon":
		return runDaemonRole()
	}
	return netnsRole(role)
}

// runDaemonRole is `packets serve` on 127.0.0.1 ephemeral ports.
func runDaemonRole() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := &Daemon{
		Server:  &Server{Cache: &fetch.Cache{Dir: os.Getenv(cacheEnv)}, Config: Config{Logger: log}},
		PIDFile: os.Getenv(pidFileEnv),
		Listen: func(ctx context.Context) (net.PacketConn, net.Listener, error) {
			udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				return nil, nil, err
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			return udp, ln, err
		},
	}
	if err := d.Run(ctx); err != nil {
		log.Error("daemon", "err", err)
		return 1
	}
	return 0
}

// helper starts the test binary in role "echo" with the given command line
// and returns it with a way to check it is alive.
func helper(t *testing.T, args ...string) (*exec.Cmd, func() bool) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: exe, Args: args, Env: childEnv("echo")}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	r := bufio.NewReader(out)
	alive := func() bool {
		if _, err := io.WriteString(in, "ping\n"); err != nil {
			return false
		}
		line, err := r.ReadString('\n')
		return err == nil && line == "ping\n"
	}
	if !alive() { // also: it runs its role, so its cmdline is in place
		t.Fatal("helper did not start")
	}
	return cmd, alive
}

func TestIsPacketsDaemon(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"packets", "serve"}, true},
		{[]string{"/usr/bin/packets", "--root", "/srv/m", "serve", "-v"}, true},
		{[]string{"packets", "--config", "x", "serve"}, true},
		{[]string{"packets", "serve", "status"}, false},
		{[]string{"packets", "serve", "stop"}, false},
		{[]string{"packets", "serve", "init"}, false},
		{[]string{"packets", "apply"}, false},
		{[]string{"sleeper", "serve"}, false},
		{[]string{"serve", "packets"}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd, _ := helper(t, tt.args...)
			if got := IsPacketsDaemon(cmd.Process.Pid); got != tt.want {
				t.Errorf("IsPacketsDaemon = %v, want %v", got, tt.want)
			}
		})
	}
	for _, pid := range []int{0, -1, os.Getpid(), 1 << 30} {
		if IsPacketsDaemon(pid) {
			t.Errorf("IsPacketsDaemon(%d) = true", pid)
		}
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run", "serve.pid")
	if _, err := ReadPIDFile(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if err := WritePIDFile(p); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPIDFile(p); err != nil || got != os.Getpid() {
		t.Errorf("ReadPIDFile = %d, %v; want %d", got, err, os.Getpid())
	}
	for _, bad := range []string{"", "x\n", "-4\n", "0\n", "12 13\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := ReadPIDFile(p); err == nil {
			t.Errorf("ReadPIDFile(%q) accepted it", bad)
		}
	}
	// A live daemon's pid file is never taken over.
	cmd, _ := helper(t, "packets", "serve")
	os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	var running *RunningError
	if err := WritePIDFile(p); !errors.As(err, &running) || running.PID != cmd.Process.Pid {
		t.Errorf("WritePIDFile over a live daemon: err = %v, want a *RunningError", err)
	}
}

func TestStopStale(t *testing.T) {
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	other, otherAlive := helper(t, "sleeper", "serve")
	status, statusAlive := helper(t, "packets", "serve", "status")
	tests := []struct {
		name    string
		content string
		alive   func() bool // must still be alive afterwards
	}{
		{"garbage", "not a pid\n", nil},
		{"exited process", strconv.Itoa(exited.Process.Pid) + "\n", nil},
		{"another program", strconv.Itoa(other.Process.Pid) + "\n", otherAlive},
		{"a packets client", strconv.Itoa(status.Process.Pid) + "\n", statusAlive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "serve.pid")
			os.WriteFile(p, []byte(tt.content), 0o644)
			os.WriteFile(PortsFile(p), []byte("udp 1\nhttp 2\n"), 0o644)
			if err := Stop(t.Context(), p); !errors.Is(err, ErrNotRunning) {
				t.Errorf("Stop = %v, want ErrNotRunning", err)
			}
			for _, f := range []string{p, PortsFile(p)} {
				if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s not removed (%v)", f, err)
				}
			}
			if tt.alive != nil && !tt.alive() {
				t.Error("Stop signalled a process that is not a packets daemon")
			}
		})
	}
	t.Run("no pid file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "serve.pid")
		if err := Stop(t.Context(), p); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Stop = %v, want ErrNotRunning", err)
		}
	})
}

func TestStartStatusStop(t *testing.T) {
	b1, _ := testBlob("a", 100, 1)
	b2, w2 := testBlob("b", 200, 2)
	cache := newCache(t, b1, b2)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "run", "serve.pid")
	opts := daemonOptions(t, dir, "daemon", cache, pidFile)
	// systemd's side of Type=notify.
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	opts.Env = append(opts.Env, "NOTIFY_SOCKET="+filepath.Join(dir, "notify"))
	notified := func(want string) {
		t.Helper()
		buf := make([]byte, 64)
		notify.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := notify.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("systemd was told %q, %v; want %q", buf[:n], err, want)
		}
	}

	pid, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(context.WithoutCancel(t.Context()), pidFile) })

	notified("READY=1")
	st, err := ReadStatus(pidFile, cache)
	if err != nil {
		t.Fatal(err)
	}
	if st.UDPPort == 0 || st.HTTPPort == 0 {
		t.Errorf("status has no ports: %+v", st)
	}
	want := Status{Running: true, PID: pid, UDPPort: st.UDPPort, HTTPPort: st.HTTPPort, Blobs: 2}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("ReadStatus (-want +got):\n%s", diff)
	}
	// It is listening: it answers a query at the ports it reported.
	conn := listenUDP(t, "127.0.0.1:0")
	got := exchange(t, conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: st.UDPPort}, Query(w2.Digest))
	if want := string(Answer(w2.Digest, st.HTTPPort)); string(got) != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	var running *RunningError
	if _, err := Start(t.Context(), opts); !errors.As(err, &running) || running.PID != pid {
		t.Errorf("second Start: err = %v, want a *RunningError for pid %d", err, pid)
	}

	if err := Stop(t.Context(), pidFile); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	notified("STOPPING=1")
	for _, f := range []string{pidFile, PortsFile(pidFile)} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
	if IsPacketsDaemon(pid) {
		t.Error("the daemon still runs after Stop")
	}
	st, err = ReadStatus(pidFile, cache)
	if diff := cmp.Diff(Status{Blobs: 2}, st); err != nil || diff != "" {
		t.Errorf("ReadStatus after Stop: %v (-want +got):\n%s", err, diff)
	}
	if err := Stop(t.Context(), pidFile); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Stop = %v, want ErrNotRunning", err)
	}
	log, _ := os.ReadFile(opts.LogFile)
	if !strings.Contains(string(log), "serving the cache to LAN peers") {
		t.Errorf("daemon log lacks its start line:\n%s", log)
	}
}

func TestStartFails(t *testing.T) {
	dir := t.TempDir()
	opts := daemonOptions(t, dir, "fail", newCache(t), filepath.Join(dir, "serve.pid"))
	_, err := Start(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), opts.LogFile) {
		t.Errorf("Start = %v, want the exit status and the log file", err)
	}
	if log, _ := os.ReadFile(opts.LogFile); !strings.Contains(string(log), "cannot start") {
		t.Errorf("log file lacks the daemon's message: %q", log)
	}
}

func daemonOptions(t *testing.T, dir, role string, cache *fetch.Cache, pidFile string) StartOptions {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return StartOptions{
		Path: exe, Args: []string{"packets", "serve"}, PIDFile: pidFile,
		LogFile: filepath.Join(dir, "serve.log"),
		Env:     childEnv(role, cacheEnv+"="+cache.Dir, pidFileEnv+"="+pidFile),
	}
}

// TestSystemdUnit: the shipped unit runs the daemon in the foreground as
// Type=notify (Daemon.Run notifies), with a command line that Stop and
// status recognise.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../examples/systemd/packets-serve.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	section := ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("not a key=value line: %q", line)
			}
			keys[section+k] = v
		}
	}
	if got := keys["[Service]Type"]; got != "notify" {
		t.Errorf("Type=%s, want notify", got)
	}
	if args := strings.Fields(keys["[Service]ExecStart"]); !isDaemonCommand(args) {
		t.Errorf("ExecStart=%v is not recognised as the daemon", args)
	}
	if !strings.Contains(keys["[Service]RestrictAddressFamilies"], "AF_NETLINK") {
		t.Error("the daemon lists interfaces over netlink: AF_NETLINK must be allowed")
	}
	if keys["[Install]WantedBy"] == "" {
		t.Error("no [Install] WantedBy")
	}
}

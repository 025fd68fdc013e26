package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/packets-dev/packets/fetch"
)

// ErrNotRunning says that no packets daemon runs for a pid file (it is
// missing, or was stale and has been removed).
var ErrNotRunning = errors.New("the packets peer daemon is not running")

// RunningError says that a daemon already runs for a pid file.
type RunningError struct {
	PID     int
	PIDFile string
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("the packets peer daemon is already running (pid %d, %s)", e.PID, e.PIDFile)
}

// Status says whether the daemon runs, where it listens and how many blobs
// the cache holds for it to serve.
type Status struct {
	Running  bool `json:"running"`
	PID      int  `json:"pid,omitempty"`
	UDPPort  int  `json:"udp_port,omitempty"`
	HTTPPort int  `json:"http_port,omitempty"`
	Blobs    int  `json:"blobs"`
}

// ReadStatus reports on the daemon of pidFile: running or not (a stale pid
// file counts as not running and is left alone), the ports it bound (from
// the file beside the pid file, see PortsFile), and the number of blobs in
// cache.
func ReadStatus(pidFile string, cache *fetch.Cache) (Status, error) {
	var st Status
	blobs, err := cache.List()
	if err != nil {
		return st, fmt.Errorf("list cache: %w", err)
	}
	st.Blobs = len(blobs)
	pid, err := ReadPIDFile(pidFile)
	if err != nil || !IsPacketsDaemon(pid) {
		return st, nil
	}
	st.Running, st.PID = true, pid
	st.UDPPort, st.HTTPPort, _ = readPorts(PortsFile(pidFile))
	return st, nil
}

// PortsFile is where a running daemon records the ports it bound, beside
// its pid file: "udp <port>\nhttp <port>\n". The pid file itself holds only
// the pid, as systemd and scripts expect.
func PortsFile(pidFile string) string { return pidFile + ".ports" }

// WritePIDFile records this process as the daemon of path, atomically. It
// refuses (a *RunningError) when path names another live packets daemon; a
// stale file is replaced.
func WritePIDFile(path string) error {
	if pid, err := ReadPIDFile(path); err == nil && pid != os.Getpid() && IsPacketsDaemon(pid) {
		return &RunningError{PID: pid, PIDFile: path}
	}
	return writeFileAtomic(path, []byte(strconv.Itoa(os.Getpid())+"\n"))
}

// ReadPIDFile reads the pid in path: one positive decimal number on the
// first line. A missing file is an error matching fs.ErrNotExist.
func ReadPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(line)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", path, line)
	}
	return pid, nil
}

// removePIDFile removes path and its ports file if path still names pid
// (another daemon may have replaced it).
func removePIDFile(path string, pid int) error {
	if got, err := ReadPIDFile(path); err != nil || got != pid {
		return nil
	}
	err := os.Remove(path)
	if rerr := os.Remove(PortsFile(path)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// removeStale removes a pid file that names no packets daemon, and its
// ports file.
func removeStale(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if rerr := os.Remove(PortsFile(path)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// IsPacketsDaemon reports whether pid is a running packets peer daemon: its
// command line (/proc/<pid>/cmdline) has a program name containing
// "packets" and an argument "serve" that is not followed by "init", "stop"
// or "status" (those are short-lived commands, not the daemon). Nothing
// else is ever signalled. This process is never a daemon to itself.
func IsPacketsDaemon(pid int) bool {
	if pid <= 0 || pid == os.Getpid() {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	return isDaemonCommand(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
}

// isDaemonCommand is IsPacketsDaemon's test of a command line.
func isDaemonCommand(args []string) bool {
	if len(args) < 2 || !strings.Contains(filepath.Base(args[0]), "packets") {
		return false
	}
	i := slices.Index(args, "serve")
	if i < 1 {
		return false
	}
	if i+1 < len(args) {
		switch args[i+1] {
		case "init", "stop", "status":
			return false
		}
	}
	return true
}

// writePorts records the bound ports beside the pid file.
func writePorts(path string, udp, http net.Addr) error {
	return writeFileAtomic(path, fmt.Appendf(nil, "udp %d\nhttp %d\n", portOf(udp), portOf(http)))
}

func readPorts(path string) (udp, http int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, _ := strconv.Atoi(v)
		switch k {
		case "udp":
			udp = n
		case "http":
			http = n
		}
	}
	return udp, http, nil
}

func portOf(a net.Addr) int {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.Port
	case *net.TCPAddr:
		return a.Port
	}
	return 0
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so that a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

package lua

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// childAttr puts the child in its own process group (so that a kill reaches
// anything it might start, and a terminal's ^C reaches only packets, which
// then stops the child itself) and has the kernel kill it when packets dies.
// Pdeathsig fires when the thread that started the child exits; the Go
// runtime keeps its threads unless a goroutine locked to one exits, which
// the code starting sessions must not do.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the child's process group.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}

// vmSize is the process's virtual size in bytes, or 0 if unknown.
func vmSize() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	fields := bytes.Fields(b)
	if err != nil || len(fields) == 0 {
		return 0
	}
	pages, err := strconv.ParseUint(string(fields[0]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// setAddressSpaceLimit lowers the soft RLIMIT_AS (never above the hard one).
func setAddressSpaceLimit(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &rl); err != nil {
		return err
	}
	rl.Cur = min(n, rl.Max)
	return syscall.Setrlimit(syscall.RLIMIT_AS, &rl)
}

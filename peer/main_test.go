package peer

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// roleEnv selects what the test binary does when a test re-executes it (as
// a daemon, a helper process, or a role inside a network namespace).
const roleEnv = "PEER_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

func bytesReadSeeker(b []byte) io.ReadSeeker { return bytes.NewReader(b) }

// childEnv is the environment of a re-executed test binary in role. The race
// detector's default pause of a second at exit is turned off.
func childEnv(role string, extra ...string) []string {
	env := append(os.Environ(), roleEnv+"="+role, "GORACE=atexit_sleep_ms=0")
	return append(env, extra...)
}

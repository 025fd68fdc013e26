//go:build race

package lua

// raceEnabled: the race detector cannot run under RLIMIT_AS.
const raceEnabled = true

//go:build !race

package lua_test

// raceBuild: the race detector makes huge copies very slow and the sandbox
// child runs without RLIMIT_AS.
const raceBuild = false

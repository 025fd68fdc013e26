// Package cli is the packets command line: a cobra tree of thin commands
// over the library packages, the wiring of real implementations (disk,
// HTTP, SQLite, the Lua child process), rendering, and the mapping of
// errors to exit codes. It holds no package management logic of its own.
package cli

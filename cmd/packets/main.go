// Command packets is a declarative package manager for Linux: it makes a
// machine converge on the packages its state file declares.
package main

import (
	"os"

	"github.com/packets-dev/packets/cmd/packets/cli"
)

func main() { os.Exit(cli.Main()) }

// Command rotor rotates PostgreSQL credentials and rolls the new connection
// string out to every place that holds a copy. See README.md.
package main

import (
	"os"

	"github.com/rotorhq/rotor/internal/cli"
)

func main() { os.Exit(cli.Main()) }

// Command rotor rotates PostgreSQL credentials and rolls the new connection
// string out to every place that holds a copy. See README.md.
package main

import (
	"os"

	"github.com/rotorhq/rotor/internal/cli"
	// Its init backs the start of the heap with huge pages: a short
	// command's page faults in fresh heap are much of its time.
	_ "github.com/rotorhq/rotor/internal/hugeheap"
)

func main() { os.Exit(cli.Main()) }

// Command enrichctl is the operator CLI of the enrichment control plane.
package main

import (
	"os"

	"github.com/sportsintel/enrich/ctl"
)

func main() {
	os.Exit(ctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}

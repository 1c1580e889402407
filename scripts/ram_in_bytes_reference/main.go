// Prints go-units v0.5.0's RAMInBytes for the sizes src/units.rs tests
// (`units::ram_in_bytes`): the Dockerfile frontend's tmpfs `size=` and
// buildx's --shm-size read sizes with it. Run from this folder:
//
//	GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"fmt"

	"github.com/docker/go-units"
)

func main() {
	for _, s := range []string{"512", "64m", "1GiB", "1.5 g", "2KB", "1e6", "1_000", "1_000k", "5b", ".5k",
		"10ib", "", "lots", "1x", "1mx", ".5m", "5.m", "1  m", " 1m", "1m ", "1e3", "99999999p", "1__0", "_1",
		"1_", "-1", "0x1p4", "1e400"} {
		v, err := units.RAMInBytes(s)
		fmt.Printf("%q %d %v\n", s, v, err != nil)
	}
}

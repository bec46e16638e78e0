//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// protocolStdout fails: the agent runs on Linux only.
func protocolStdout() (*os.File, error) {
	return nil, fmt.Errorf("napilab agent runs on Linux, not %s", runtime.GOOS)
}

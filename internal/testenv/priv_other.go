//go:build !linux

package testenv

import (
	"fmt"
	"runtime"
)

func privileged() error {
	return fmt.Errorf("privileged tests run on Linux only, not %s", runtime.GOOS)
}

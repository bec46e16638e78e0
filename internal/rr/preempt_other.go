//go:build !linux

package rr

// RestartForSpinning does nothing where napilab's loops cannot run.
func RestartForSpinning() error { return nil }

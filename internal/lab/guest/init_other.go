//go:build !linux

package guest

// MaybeRunInit does nothing off Linux: the lab's guest is always Linux.
func MaybeRunInit() {}

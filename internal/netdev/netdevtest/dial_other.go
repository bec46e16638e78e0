//go:build !linux

package netdevtest

import "github.com/mdlayher/genetlink"

// Dial fails the test: the fake answers with Linux errnos and netlink constants, so it runs on Linux only.
func (f *Family) Dial() *genetlink.Conn {
	f.tb.Helper()
	f.tb.Fatalf("netdevtest fakes the Linux netdev family and runs on Linux only")
	return nil
}

package testenv

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// privileged checks the effective capabilities the privileged tests use.
func privileged() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, c := range []struct {
		name string
		bit  int
	}{{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN}, {"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN},
		{"CAP_NET_RAW", unix.CAP_NET_RAW}, {"CAP_IPC_LOCK", unix.CAP_IPC_LOCK}} {
		if data[c.bit/32].Effective&(1<<(uint(c.bit)%32)) == 0 {
			return fmt.Errorf("missing %s", c.name)
		}
	}
	return nil
}

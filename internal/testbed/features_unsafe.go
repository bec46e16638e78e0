//go:build linux

package testbed

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// ethtoolValue is struct ethtool_value, the argument of the one-flag ETHTOOL_G*/S* ioctls.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data set; x/sys keeps its own equivalent unexported.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte // the rest of the 24-byte union
}

// ethtoolFlag runs one legacy ethtool flag ioctl (ETHTOOL_GGRO, ETHTOOL_STSO, ...) on link in the calling
// thread's network namespace. For a get, the flag's value is returned. The ioctl is used rather than
// ethtool-netlink's features-set because one call flips a whole feature group (ETHTOOL_STSO: every TSO variant)
// the way `ethtool -K` does.
func ethtoolFlag(link string, cmd, value uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, kernel.NewOpError("open ethtool socket for", link, err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd, data: value}
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], link)
	ifr.data = unsafe.Pointer(&v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return 0, kernel.NewOpError("ethtool ioctl", link, errno)
	}
	return v.data, nil
}

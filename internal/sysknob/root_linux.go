package sysknob

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
)

// Host returns the view of the running system: /sys and /proc as this process sees them. Network sysctls resolve
// in the network namespace of the calling thread, which for an ordinary goroutine is the process's.
func Host() (*Root, error) {
	sys, err := os.OpenRoot("/sys")
	if err != nil {
		return nil, kernel.NewOpError("open", "/sys", err)
	}
	proc, err := os.OpenRoot("/proc")
	if err != nil {
		sys.Close()
		return nil, kernel.NewOpError("open", "/proc", err)
	}
	return &Root{sys: sys, proc: proc, netns: -1}, nil
}

// NetNS returns the view of the network namespace behind nsfd (an open /proc/<pid>/ns/net or /run/netns/<name>;
// the caller keeps ownership of nsfd). Its /sys is a private sysfs instance created from inside the namespace,
// so /sys/class/net lists that namespace's devices; it is attached to no mount point, vanishes on Close and pins
// the namespace until then. Its network sysctls are opened from a thread inside the namespace. Everything else
// (IRQs, CPUs, the scheduler) is machine-wide and reads as on the host.
func NetNS(nsfd int) (*Root, error) {
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return nil, kernel.NewOpError("stat", "network namespace fd", err)
	}
	ns, err := unix.FcntlInt(uintptr(nsfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, kernel.NewOpError("dup", "network namespace fd", err)
	}
	r := &Root{netns: ns, desc: fmt.Sprintf("network namespace net:[%d]", st.Ino)}
	r.closers = append(r.closers, func() error { return unix.Close(ns) })
	if r.sys, err = mountSysfs(ns); err != nil {
		unix.Close(ns)
		return nil, err
	}
	if r.proc, err = os.OpenRoot("/proc"); err != nil {
		r.sys.Close()
		unix.Close(ns)
		return nil, kernel.NewOpError("open", "/proc", err)
	}
	return r, nil
}

// mountSysfs creates a sysfs instance tagged with the network namespace ns and returns its root, attached to no
// mount point. sysfs takes the namespace of the task that creates the filesystem context, so only fsopen(2) runs
// inside ns; the detached mount lives as long as a file (the returned os.Root) refers to it. Neither the host's
// mount table nor any mount namespace ever sees it. (Merely setns-ing a thread does not change what /sys shows:
// that follows the mount.)
func mountSysfs(ns int) (*os.Root, error) {
	var fsfd int
	err := netns.DoFD(ns, "network namespace", func() (err error) {
		fsfd, err = unix.Fsopen("sysfs", unix.FSOPEN_CLOEXEC)
		return err
	})
	if err != nil {
		return nil, kernel.WithHint(kernel.NewOpError("fsopen", "sysfs in the network namespace", err),
			"sysfs of another network namespace needs CAP_SYS_ADMIN and Linux 5.2 or newer")
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, kernel.NewOpError("create", "sysfs in the network namespace", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, kernel.NewOpError("fsmount", "sysfs in the network namespace", err)
	}
	defer unix.Close(mfd)
	root, err := os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", mfd))
	if err != nil {
		return nil, kernel.NewOpError("open", "sysfs in the network namespace", err)
	}
	return root, nil
}

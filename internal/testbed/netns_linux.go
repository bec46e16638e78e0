package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
)

// newNamespace creates a network namespace and returns a descriptor holding it and its nsfs inode. With a path,
// the namespace is also bind-mounted there as `ip netns add` does, so it outlives the descriptor; the file is
// created exclusively, so an existing namespace of that name is never replaced.
func newNamespace(path string) (fd int, inode uint64, err error) {
	fd = -1
	err = netns.OnThread(true, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return kernel.NewOpError("create network namespace", path, err)
		}
		nfd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return kernel.NewOpError("open new network namespace", path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(nfd, &st); err != nil {
			unix.Close(nfd)
			return kernel.NewOpError("stat new network namespace", path, err)
		}
		if path != "" {
			if err := mountNamespace(nfd, path); err != nil {
				unix.Close(nfd)
				return err
			}
		}
		fd, inode = nfd, st.Ino
		return nil
	})
	return fd, inode, err
}

func mountNamespace(nsfd int, path string) error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netnsDir, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, os.ErrExist) {
		return kernel.WithHint(fmt.Errorf("network namespace %s already exists: %w", path, err),
			"it was not made by this testbed and napilab leaves it alone; pick another testbed name")
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	src := fmt.Sprintf("/proc/self/fd/%d", nsfd)
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return kernel.NewOpError("bind-mount network namespace on", path, err)
	}
	return nil
}

const netnsDir = netns.Dir

// deleteNamed unmounts and removes a namespace file, but only while it still is the namespace with the given
// inode: a name that was reused by someone else is left alone. Inode 0 means the namespace was never mounted
// there by this testbed (Up failed or died before), so nothing there can be proven ours.
func deleteNamed(path string, inode uint64) error {
	if inode == 0 {
		return nil
	}
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return kernel.NewOpError("stat", path, err)
	}
	if st.Ino != inode {
		return fmt.Errorf("%s is not the namespace this testbed made (inode %d, recorded %d); leaving it alone",
			path, st.Ino, inode)
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return kernel.NewOpError("unmount network namespace", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// isNamespace reports whether path is an nsfs file (a mounted namespace).
func isNamespace(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// openNamespace opens a named namespace and checks that it is the one recorded.
func openNamespace(path string, inode uint64) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, kernel.NewOpError("open network namespace", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, kernel.NewOpError("stat network namespace", path, err)
	}
	if st.Ino != inode || !isNamespace(path) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not the namespace the testbed made (inode %d, recorded %d)", path, st.Ino, inode)
	}
	return fd, nil
}

// Do runs fn on an OS thread inside the host's network namespace. Sockets fn opens stay in the namespace and
// may be used from any goroutine afterwards; goroutines fn starts do not run in the namespace.
func (h *Host) Do(fn func() error) error {
	if h.nsfd < 0 {
		return fmt.Errorf("testbed host %s: %w", h.Namespace, os.ErrClosed)
	}
	return netns.DoFD(h.nsfd, h.Namespace, fn)
}

// Start starts cmd inside the host, like `ip netns exec`: in its network namespace, and in a private mount
// namespace whose /sys is a sysfs of that network namespace, so /sys/class/net shows the host's devices (sysfs
// follows the mount namespace, not the network namespace: gotcha 12).
//
// It works because namespaces are per thread and fork(2) copies the forking thread's: Start moves a locked OS
// thread into the namespaces and calls cmd.Start there, and Go forks the child from the calling goroutine's
// thread. That thread then ends with its goroutine, since its mount namespace can no longer be shared with the
// rest of the process.
func (h *Host) Start(cmd *exec.Cmd) error {
	if h.nsfd < 0 {
		return fmt.Errorf("testbed host %s: %w", h.Namespace, os.ErrClosed)
	}
	return netns.OnThread(false, func() error {
		if err := h.enter(); err != nil {
			return err
		}
		return cmd.Start()
	})
}

// Exec replaces the calling process with argv run inside the host, in the namespaces Start gives a child.
// On success it does not return.
func (h *Host) Exec(path string, argv, env []string) error {
	if h.nsfd < 0 {
		return fmt.Errorf("testbed host %s: %w", h.Namespace, os.ErrClosed)
	}
	return netns.OnThread(false, func() error {
		if err := h.enter(); err != nil {
			return err
		}
		return kernel.NewOpError("exec", path, unix.Exec(path, argv, env))
	})
}

// enter moves the calling (locked) thread into the host's network namespace and a private mount namespace with
// the namespace's sysfs on /sys.
func (h *Host) enter() error {
	if err := netns.Enter(h.nsfd, h.Namespace); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return kernel.NewOpError("create mount namespace for", h.Namespace, err)
	}
	// Make every mount a slave first: the unmount below must not propagate back into the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return kernel.NewOpError("make mounts private for", h.Namespace, err)
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return kernel.NewOpError("unmount /sys for", h.Namespace, err) // EINVAL: /sys was not mounted
	}
	if err := unix.Mount(h.Namespace, "/sys", "sysfs", 0, ""); err != nil {
		return kernel.NewOpError("mount sysfs for", h.Namespace, err)
	}
	return nil
}

package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// OnThread runs fn on a fresh goroutine locked to its own OS thread and waits for it. fn may move the thread
// into other namespaces. Afterwards, if keep is true and the thread can be put back into the network namespace
// it started in, it returns to the scheduler; otherwise the goroutine exits still locked and Go destroys the
// thread, so no other goroutine ever runs in a namespace it did not ask for. Pass keep=false when fn changes
// something Do cannot undo (a private mount namespace). A panic in fn is re-raised in the caller's goroutine,
// where its deferred cleanups still run.
func OnThread(keep bool, fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: kernel.NewOpError("open", "/proc/thread-self/ns/net", err)}
			return
		}
		defer unix.Close(orig)
		var r result
		func() {
			defer func() { r.panic = recover() }()
			r.err = fn()
		}()
		if keep && unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- r
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// Do runs fn inside the network namespace at path ("" runs it right here, in the caller's goroutine).
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	fd, err := Open(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return DoFD(fd, path, fn)
}

// DoFD runs fn inside the network namespace behind the open descriptor fd; name is for messages.
func DoFD(fd int, name string, fn func() error) error {
	return OnThread(true, func() error {
		if err := Enter(fd, name); err != nil {
			return err
		}
		return fn()
	})
}

// Enter moves the calling thread, which must be locked, into the namespace behind fd.
func Enter(fd int, name string) error {
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return kernel.WithHint(kernel.NewOpError("enter network namespace", name, err), "run as root")
	}
	return nil
}

// Open opens the namespace at path for Enter or DoFD; the caller closes the descriptor. A path that is not a
// namespace, or none, is a sentence saying how to find one.
func Open(path string) (int, error) {
	if path == "" {
		path = "/proc/self/ns/net"
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, openError(path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return -1, kernel.NotFound("%s is not a network namespace: name one from `ip netns list` or "+
			"`napilab testbed show`, or a path like /proc/PID/ns/net", path)
	}
	return fd, nil
}

// Inode returns the nsfs inode of the namespace at path, or of napilab's own for "".
func Inode(path string) (uint64, error) {
	p := path
	if p == "" {
		p = "/proc/self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, openError(path, err)
	}
	return st.Ino, nil
}

// InodeFD returns the nsfs inode of the namespace behind fd.
func InodeFD(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, kernel.NewOpError("stat", "network namespace descriptor", err)
	}
	return st.Ino, nil
}

// Initial reports whether the calling thread is in the machine's initial network namespace, the only one that
// holds the machine-wide networking sysctls (net.core.busy_read, busy_poll, rps_sock_flow_entries,
// netdev_budget, ...: the kernel's net_core_table is registered for the initial namespace alone). It asks
// /proc/sys itself, whose net directory shows the opening thread's namespace, because the other way — comparing
// with PID 1's namespace — needs /proc/1, which a PID namespace (a container) hides. netdev_budget is the
// marker: it exists on every configuration, unlike busy_read.
func Initial() (bool, error) {
	_, err := os.Stat("/proc/sys/net/core/netdev_budget")
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return true, fmt.Errorf("tell the initial network namespace: %w", err)
}

func openError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return kernel.NotFound("there is no network namespace at %s: list them with `ip netns list` "+
			"(or `napilab testbed show`)", path)
	}
	if errors.Is(err, os.ErrPermission) {
		return kernel.WithHint(kernel.NewOpError("open network namespace", path, err), "run as root")
	}
	return fmt.Errorf("open network namespace %s: %w", path, err)
}

// Holding lists the named namespaces under Dir that have a network interface called dev, and whether the
// calling thread's own namespace has one too: what an error about a device that is not where a user looked
// needs, to say where it is. Namespaces that cannot be entered are left out.
func Holding(dev string) (names []string, here bool) {
	_, err := net.InterfaceByName(dev)
	here = err == nil
	entries, err := os.ReadDir(Dir)
	if err != nil {
		return nil, here
	}
	self, _ := Inode("")
	for _, e := range entries {
		path := filepath.Join(Dir, e.Name())
		if ino, err := Inode(path); err != nil || ino == self {
			continue
		}
		found := false
		if Do(path, func() error {
			_, err := net.InterfaceByName(dev)
			found = err == nil
			return nil
		}) == nil && found {
			names = append(names, e.Name())
		}
	}
	return names, here
}

// NameOf returns the name under Dir of the namespace the calling thread is in, or "" when it has none there.
func NameOf() string {
	self, err := Inode("/proc/thread-self/ns/net")
	if err != nil {
		return ""
	}
	entries, err := os.ReadDir(Dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if ino, err := Inode(filepath.Join(Dir, e.Name())); err == nil && ino == self {
			return e.Name()
		}
	}
	return ""
}

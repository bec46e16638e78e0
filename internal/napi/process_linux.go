package napi

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A process is stopped through a pidfd: signalling a PID could hit a new process that reused it, a pidfd names
// one process for good, and polling it tells when that process has exited even though it is not a child.

func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

func pidfdKill(fd int) error { return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) }

func pidfdWait(fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("the process did not exit within %v of SIGKILL", timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the process to exit: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
}

func closeFD(fd int) { unix.Close(fd) }

// TakeLock takes the lock of a device directory (DeviceDir) for the life of this process or until Release, and
// writes who holds it into the lock file. A lock held by another process is an error naming that holder. The
// lock is an flock(2): the kernel drops it when its holder dies, whatever the way, so a lock is never stale.
func TakeLock(dir string, h Holder) (*Lock, error) {
	for attempt := 0; ; attempt++ {
		if err := mkdirAll(dir); err != nil {
			return nil, err
		}
		path := lockPath(dir)
		f, err := openLockFile(path)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, heldError(path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The previous holder removes the file when it lets go; a lock taken on a file that was removed
		// meanwhile guards nothing, so take it again on the file that is there now.
		var fst, pst unix.Stat_t
		if unix.Fstat(int(f.Fd()), &fst) != nil || unix.Stat(path, &pst) != nil || fst.Ino != pst.Ino {
			f.Close()
			if attempt < 10 {
				continue
			}
			return nil, fmt.Errorf("lock %s: it keeps being replaced", path)
		}
		l := &Lock{f: f, path: path}
		if err := l.write(h); err != nil {
			l.Release()
			return nil, err
		}
		return l, nil
	}
}

// lockWait takes an exclusive flock on f, waiting up to wait for another holder to let go.
func lockWait(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, unix.EWOULDBLOCK):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("another napilab has held it for %v: wait for it to finish", wait)
		}
		time.Sleep(10 * time.Millisecond) // waiting for another process, not timing anything
	}
}

package netns_test

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// threadNS is the inode of the calling thread's network namespace.
func threadNS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Do runs fn in the namespace, leaves every other goroutine where it was, and re-raises fn's panic in the
// caller.
func TestPrivDo(t *testing.T) {
	testenv.RequirePriv(t)
	bed, err := testbed.Up(context.Background(), testbed.Topology{Prefix: "nsdo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Down() })
	path := bed.B.NetNSPath()
	want, err := netns.Inode(path)
	if err != nil {
		t.Fatal(err)
	}
	own, err := netns.Inode("")
	if err != nil {
		t.Fatal(err)
	}
	if want == own {
		t.Fatalf("the testbed's namespace is napilab's own (net:[%d])", own)
	}
	for i := 0; i < 20; i++ { // many times: a thread put back in the wrong namespace would be reused
		var inside uint64
		if err := netns.Do(path, func() error { inside = threadNS(t); return nil }); err != nil {
			t.Fatal(err)
		}
		if inside != want {
			t.Fatalf("fn ran in net:[%d], want the testbed's net:[%d]", inside, want)
		}
		if got := threadNS(t); got != own {
			t.Fatalf("the caller's thread is in net:[%d] after Do, want net:[%d]", got, own)
		}
	}
	fd, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if ino, err := netns.InodeFD(fd); err != nil || ino != want {
		t.Fatalf("InodeFD = %d, %v; want %d", ino, err, want)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want fn's panic \"boom\"", r)
			}
		}()
		_ = netns.DoFD(fd, path, func() error { panic("boom") })
	}()
	if initial, err := netns.Initial(); err != nil || !initial {
		t.Errorf("Initial() = %v, %v from the test process; want true", initial, err)
	}
	var initialInside bool
	if err := netns.Do(path, func() (err error) { initialInside, err = netns.Initial(); return err }); err != nil {
		t.Fatal(err)
	}
	if initialInside {
		t.Error("Initial() is true inside the testbed's namespace")
	}
}

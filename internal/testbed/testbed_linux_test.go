package testbed_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// The test binary doubles as the child process of several tests; helperEnv selects the role.
const (
	helperEnv   = "NAPILAB_TESTBED_HELPER"
	stateDirEnv = "NAPILAB_TESTBED_STATE"
	nameEnv     = "NAPILAB_TESTBED_NAME"
	exitEnv     = "NAPILAB_TESTBED_EXIT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "", "midway-fatal", "midway-panic": // the midway roles run inside the testing framework
		os.Exit(m.Run())
	case "links":
		helperLinks()
	case "exec":
		helperExec()
	case "hold":
		helperHold()
	case "nopriv":
		helperNoPriv()
	}
	fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
	os.Exit(2)
}

// helperLinks prints what a process sees of its network namespace: sysfs and the kernel's interface list.
func helperLinks() {
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		fmt.Printf("sysfs %s\n", e.Name())
		queues, _ := os.ReadDir(filepath.Join("/sys/class/net", e.Name(), "queues"))
		for _, q := range queues {
			fmt.Printf("queue %s %s\n", e.Name(), q.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println("error", err)
	}
	for _, i := range ifs {
		fmt.Printf("iface %s %d %s\n", i.Name, i.Index, i.HardwareAddr)
	}
	code, _ := strconv.Atoi(os.Getenv(exitEnv))
	os.Exit(code)
}

// helperExec opens a named testbed and replaces itself with helperLinks inside host A.
func helperExec() {
	bed, err := testbed.Store{Dir: os.Getenv(stateDirEnv)}.Open(os.Getenv(nameEnv))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	// execve keeps duplicate variables and Go's getenv takes the first, so drop this role before adding the next.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, helperEnv+"=") })
	err = bed.A.Exec(os.Args[0], []string{os.Args[0]}, append(env, helperEnv+"=links"))
	fmt.Println("error", err)
	os.Exit(4)
}

// helperHold builds a testbed of the lifetime named in nameEnv, prints its name and namespace inodes, and waits
// for stdin to close (or to be killed).
func helperHold() {
	var lt testbed.Lifetime
	if err := lt.UnmarshalText([]byte(os.Getenv(nameEnv))); err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	bed, err := testbed.Up(context.Background(), testbed.Topology{Prefix: testbedtest.Prefix, Lifetime: lt,
		StateDir: os.Getenv(stateDirEnv)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fmt.Printf("name %s\ninode %d %d\n", bed.Name, nsInode(bed.A), nsInode(bed.B))
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// helperNoPriv drops every capability in all threads (setuid from root to nobody) and tries to build a testbed.
func helperNoPriv() {
	err := testenv.DropToNobody()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	_, err = testbed.Up(context.Background(), testbed.Topology{Prefix: testbedtest.Prefix})
	fmt.Println("error", err)
	if errors.Is(err, os.ErrPermission) {
		os.Exit(10)
	}
	os.Exit(11)
}

// startHelper starts the test binary in a helper role. It is killed when the test ends.
func startHelper(t *testing.T, role string, env ...string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	h := testenv.StartHelper(t, append(env, helperEnv+"="+role))
	return h.Cmd, h.Out, h.In
}

func nsInode(h *testbed.Host) uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(h.NetNS(), &st); err != nil {
		return 0
	}
	return st.Ino
}

// netnsRefs returns every network namespace inode this machine shows a reference to: threads' namespaces,
// open namespace descriptors of any process, and nsfs mounts in this mount namespace.
func netnsRefs(t *testing.T) map[uint64]string {
	t.Helper()
	refs := map[uint64]string{}
	add := func(link, where string) {
		target, err := os.Readlink(link)
		if err != nil {
			return
		}
		if s, ok := strings.CutPrefix(target, "net:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				refs[ino] = where
			}
		}
	}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
	for _, p := range tasks {
		add(p, p)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, p := range fds {
		add(p, p)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[3], "net:[") {
			ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(f[3], "net:["), "]"), 10, 64)
			refs[ino] = "mount " + f[4]
		}
	}
	return refs
}

// checkLocal checks that both of h's addresses are delivered locally as soon as Up returns: an IPv6 address's
// local route enters the FIB from a workqueue, after the address itself, and a datagram sent in between is
// dropped (Ip6InAddrErrors).
func checkLocal(t *testing.T, h *testbed.Host) {
	t.Helper()
	nl, err := netlink.NewHandleAt(netns.NsHandle(h.NetNS()), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	for _, a := range []netip.Addr{h.IPv4.Addr(), h.IPv6.Addr()} {
		routes, err := nl.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 || routes[0].Type != unix.RTN_LOCAL {
			t.Errorf("%s in %s is not delivered locally right after Up: routes %v, %v", a, h.Namespace, routes, err)
		}
	}
}

// exchange sends a datagram from a to b and a reply back, over IPv4 or IPv6, through ordinary sockets, and
// returns b's socket's SO_INCOMING_NAPI_ID after the request arrived.
func exchange(t *testing.T, a, b *testbed.Host, v6 bool) uint32 {
	t.Helper()
	srcAddr, dstAddr := a.IPv4.Addr(), b.IPv4.Addr()
	if v6 {
		srcAddr, dstAddr = a.IPv6.Addr(), b.IPv6.Addr()
	}
	server := testbedtest.ListenUDP(t, b, netip.AddrPortFrom(dstAddr, 0))
	client := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(srcAddr, 0))
	// A deadline only so that a broken testbed fails instead of hanging; nothing is timed.
	deadline := time.Now().Add(30 * time.Second)
	server.SetDeadline(deadline)
	client.SetDeadline(deadline)

	request := []byte("request from " + a.Namespace)
	if _, err := client.WriteToUDPAddrPort(request, server.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatalf("send %s -> %s: %v", srcAddr, dstAddr, err)
	}
	buf := make([]byte, 100)
	n, from, err := server.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], request) || from.Addr().Unmap() != srcAddr {
		t.Fatalf("server in %s got %q from %v, %v; want %q from %v", b.Namespace, buf[:n], from, err, request, srcAddr)
	}
	if _, err := server.WriteToUDPAddrPort([]byte("reply"), from); err != nil {
		t.Fatalf("reply %s -> %s: %v", dstAddr, srcAddr, err)
	}
	n, from, err = client.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "reply" || from.Addr().Unmap() != dstAddr {
		t.Fatalf("client in %s got %q from %v, %v; want the reply from %v", a.Namespace, buf[:n], from, err, dstAddr)
	}
	raw, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var napiID int
	var serr error
	raw.Control(func(fd uintptr) {
		napiID, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
	})
	if serr != nil {
		t.Fatal(serr)
	}
	return uint32(napiID)
}

func TestUpHostsReachEachOther(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{Neighbours: true})
	checkLocal(t, bed.A)
	checkLocal(t, bed.B)
	for _, v6 := range []bool{false, true} {
		exchange(t, bed.A, bed.B, v6)
		exchange(t, bed.B, bed.A, v6)
	}
}

// TestHostsMatchKernel checks every field of the hosts against what the kernel reports inside each namespace.
func TestHostsMatchKernel(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{Queues: 4, Neighbours: true})
	for _, p := range []struct{ h, peer *testbed.Host }{{bed.A, bed.B}, {bed.B, bed.A}} {
		h, peer := p.h, p.peer
		nl, err := netlink.NewHandleAt(netns.NsHandle(h.NetNS()), unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		defer nl.Close()
		link, err := nl.LinkByIndex(h.Ifindex)
		if err != nil {
			t.Fatalf("%s: no link with ifindex %d: %v", h.Namespace, h.Ifindex, err)
		}
		a := link.Attrs()
		if a.Name != h.Link || !bytes.Equal(a.HardwareAddr, h.MAC) || a.ParentIndex != peer.Ifindex {
			t.Errorf("%s: kernel has %s mac %s peer ifindex %d; host says %s mac %s peer %d",
				h.Namespace, a.Name, a.HardwareAddr, a.ParentIndex, h.Link, h.MAC, peer.Ifindex)
		}
		if a.NumRxQueues != 4 || a.NumTxQueues != 4 || h.RxQueues != 4 || h.TxQueues != 4 {
			t.Errorf("%s: queues kernel rx %d tx %d, host rx %d tx %d; want 4", h.Namespace,
				a.NumRxQueues, a.NumTxQueues, h.RxQueues, h.TxQueues)
		}
		if a.MTU != 1500 || a.OperState != netlink.OperUp {
			t.Errorf("%s: mtu %d state %s", h.Namespace, a.MTU, a.OperState)
		}
		// Up returns only once the link watcher replaced the "noop" discipline, which drops every frame.
		qdiscs, err := nl.QdiscList(link)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			t.Fatal(err)
		}
		for _, q := range qdiscs {
			if q.Type() == "noop" {
				t.Errorf("%s: %s still has the noop queueing discipline after Up", h.Namespace, h.Link)
			}
		}
		if len(qdiscs) == 0 {
			t.Errorf("%s: %s has no queueing discipline", h.Namespace, h.Link)
		}
		neighs, err := nl.NeighList(h.Ifindex, netlink.FAMILY_ALL)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			t.Fatal(err)
		}
		for _, want := range []netip.Addr{peer.IPv4.Addr(), peer.IPv6.Addr()} {
			found := slices.ContainsFunc(neighs, func(n netlink.Neigh) bool {
				ip, _ := netip.AddrFromSlice(n.IP)
				return ip.Unmap() == want && bytes.Equal(n.HardwareAddr, peer.MAC) && n.State == netlink.NUD_PERMANENT
			})
			if !found {
				t.Errorf("%s: no permanent neighbour %s -> %s in %v", h.Namespace, want, peer.MAC, neighs)
			}
		}
	}
	if bed.A.Namespace == bed.B.Namespace || nsInode(bed.A) == nsInode(bed.B) {
		t.Fatalf("hosts share a namespace: %s %s", bed.A.Namespace, bed.B.Namespace)
	}
}

// TestNAPIOption proves the NAPI option makes socket traffic pass the receiving veth's NAPI: the receiving
// socket learns a NAPI id. Without it (and without XDP) veth has no NAPI and the id stays 0.
func TestNAPIOption(t *testing.T) {
	testenv.CheckLeaks(t)
	for _, napi := range []bool{false, true} {
		t.Run(fmt.Sprint("napi=", napi), func(t *testing.T) {
			bed := testbedtest.New(t, testbed.Topology{NAPI: napi})
			for _, v6 := range []bool{false, true} {
				id := exchange(t, bed.A, bed.B, v6)
				if napi && id == 0 || !napi && id != 0 {
					t.Fatalf("NAPI=%v ipv6=%v: receiving socket's NAPI id %d", napi, v6, id)
				}
			}
		})
	}
}

// TestStartSeesNamespace runs a child in host A: it must see A's links in sysfs and netlink, and nothing of B
// or of the machine's own namespace.
func TestStartSeesNamespace(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{Queues: 3})
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=links", exitEnv+"=0")
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := bed.A.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	checkLinksOutput(t, out.String(), bed.A, 3)
}

func checkLinksOutput(t *testing.T, out string, h *testbed.Host, queues int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var want []string
	want = append(want, "sysfs lo")
	want = append(want, "sysfs "+h.Link)
	for i := range queues {
		want = append(want, fmt.Sprintf("queue %s rx-%d", h.Link, i), fmt.Sprintf("queue %s tx-%d", h.Link, i))
	}
	want = append(want, fmt.Sprintf("iface %s %d %s", h.Link, h.Ifindex, h.MAC))
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("child output lacks %q:\n%s", w, out)
		}
	}
	for _, l := range lines {
		name := strings.Fields(l + " x")[1]
		if strings.HasPrefix(l, "sysfs ") && name != "lo" && name != h.Link {
			t.Errorf("child sees a device of another namespace: %q", l)
		}
		if strings.HasPrefix(l, "iface ") && name != "lo" && name != h.Link {
			t.Errorf("child sees an interface of another namespace: %q", l)
		}
	}
}

// TestOpenAndExec opens a named testbed from its state file in another process and replaces that process with
// a command in host A: the command sees A and its exit status is the process's.
func TestOpenAndExec(t *testing.T) {
	testenv.CheckLeaks(t)
	dir := t.TempDir()
	bed := testbedtest.New(t, testbed.Topology{Lifetime: testbed.Persistent, StateDir: dir, Queues: 2})
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=exec", stateDirEnv+"="+dir, nameEnv+"="+bed.Name, exitEnv+"=7")
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("exec child = %v, want exit status 7\n%s", err, out.String())
	}
	checkLinksOutput(t, out.String(), bed.A, 2)
}

func TestOpenRejectsUnknownAndIncomplete(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	s := testbed.Store{Dir: t.TempDir()}
	if _, err := s.Open("nosuch"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "napilab testbed show") {
		t.Fatalf("Open(nosuch) = %v, want os.ErrNotExist with a hint", err)
	}
	if err := s.Down("nosuch"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Down(nosuch) = %v, want os.ErrNotExist", err)
	}
}

// TestDownRemovesEverything checks for every lifetime that after Down no process, descriptor or mount refers
// to the namespaces, no namespace file and no state file is left, and that Down is idempotent.
func TestDownRemovesEverything(t *testing.T) {
	testenv.CheckLeaks(t)
	for _, lt := range []testbed.Lifetime{testbed.Ephemeral, testbed.Owned, testbed.Persistent} {
		t.Run(lt.String(), func(t *testing.T) {
			testenv.RequirePriv(t)
			dir := t.TempDir()
			bed, err := testbed.Up(t.Context(), testbed.Topology{Prefix: testbedtest.Prefix, Lifetime: lt, StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bed.Down() })
			inodes := []uint64{nsInode(bed.A), nsInode(bed.B)}
			refs := netnsRefs(t)
			for _, ino := range inodes {
				if _, ok := refs[ino]; !ok {
					t.Fatalf("scan does not see namespace %d while the testbed is up", ino)
				}
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if lt.Named() != (len(files) == 1) {
				t.Fatalf("state files %v for lifetime %s", files, lt)
			}
			if lt.Named() {
				for _, h := range []*testbed.Host{bed.A, bed.B} {
					if _, err := os.Stat(h.NetNSPath()); err != nil {
						t.Fatal(err)
					}
				}
			}

			if err := bed.Down(); err != nil {
				t.Fatal(err)
			}
			if err := bed.Down(); err != nil {
				t.Fatalf("second Down = %v", err)
			}
			refs = netnsRefs(t)
			for _, ino := range inodes {
				if where, ok := refs[ino]; ok {
					t.Errorf("namespace %d still referenced by %s", ino, where)
				}
			}
			for _, ns := range []string{bed.A.Namespace, bed.B.Namespace} {
				if _, err := os.Lstat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("/run/netns/%s after Down: %v", ns, err)
				}
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
				t.Errorf("state files left: %v", files)
			}
			if bed.A.NetNS() != -1 {
				t.Errorf("host A still holds descriptor %d", bed.A.NetNS())
			}
			if err := bed.A.Do(func() error { return nil }); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Do after Down = %v, want os.ErrClosed", err)
			}
		})
	}
}

// TestKilledOwnerLeavesNothing: an Ephemeral testbed vanishes with its process even on SIGKILL, and an Owned
// one is reaped afterwards, while a Persistent one of a dead creator is kept.
func TestKilledOwnerLeavesNothing(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	dir := t.TempDir()
	store := testbed.Store{Dir: dir}
	type held struct {
		name   string
		inodes []uint64
	}
	hold := func(lt testbed.Lifetime, kill bool) held {
		cmd, out, stdin := startHelper(t, "hold", stateDirEnv+"="+dir, nameEnv+"="+lt.String())
		var h held
		for out.Scan() {
			f := strings.Fields(out.Text())
			switch f[0] {
			case "name":
				h.name = f[1]
			case "inode":
				for _, s := range f[1:] {
					ino, _ := strconv.ParseUint(s, 10, 64)
					h.inodes = append(h.inodes, ino)
				}
			case "error":
				t.Fatalf("helper: %s", out.Text())
			}
			if h.inodes != nil {
				break
			}
		}
		if kill {
			cmd.Process.Signal(syscall.SIGKILL)
		} else {
			stdin.Close()
		}
		cmd.Wait()
		return h
	}

	eph := hold(testbed.Ephemeral, true)
	refs := netnsRefs(t)
	for _, ino := range eph.inodes {
		if where, ok := refs[ino]; ok {
			t.Errorf("ephemeral namespace %d of a killed process still referenced by %s", ino, where)
		}
	}

	owned := hold(testbed.Owned, true)
	persistent := hold(testbed.Persistent, false)
	t.Cleanup(func() { store.Down(persistent.name) })
	reaped, err := store.Reap()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(reaped, []string{owned.name}) {
		t.Fatalf("Reap() = %v, want only the owned testbed %s", reaped, owned.name)
	}
	if _, err := os.Lstat("/run/netns/" + owned.name + "-a"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reaped testbed's namespace file: %v", err)
	}
	rec, err := store.Get(persistent.name)
	if err != nil || rec.Alive() {
		t.Fatalf("persistent testbed record %+v, %v: want it kept, with a dead owner", rec, err)
	}
	if err := store.Down(persistent.name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat("/run/netns/" + persistent.name + "-a"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace file after Store.Down: %v", err)
	}
	refs = netnsRefs(t)
	for _, ino := range append(owned.inodes, persistent.inodes...) {
		if where, ok := refs[ino]; ok {
			t.Errorf("namespace %d still referenced by %s", ino, where)
		}
	}
}

// TestHelperMidway is the child of TestFailingTestCleansUp: it builds a named testbed and then fails or panics.
func TestHelperMidway(t *testing.T) {
	testenv.CheckLeaks(t)
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // only meaningful as the child of TestFailingTestCleansUp
	}
	bed := testbedtest.New(t, testbed.Topology{Lifetime: testbed.Persistent, StateDir: os.Getenv(stateDirEnv)})
	fmt.Printf("name %s\n", bed.Name)
	if mode == "midway-panic" {
		panic("panicking mid-way on purpose")
	}
	t.Fatal("failing mid-way on purpose")
}

// TestFailingTestCleansUp runs a test that fails, and one that panics, after building a named testbed (which,
// unlike an Ephemeral one, would outlive the process): t.Cleanup must have removed it.
func TestFailingTestCleansUp(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	for _, mode := range []string{"midway-fatal", "midway-panic"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMidway$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, stateDirEnv+"="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child test passed; it should have failed:\n%s", out)
			}
			var name string
			for _, l := range strings.Split(string(out), "\n") {
				if s, ok := strings.CutPrefix(l, "name "); ok {
					name = s
				}
			}
			if name == "" {
				t.Fatalf("child never built its testbed:\n%s", out)
			}
			for _, ns := range []string{name + "-a", name + "-b"} {
				if _, err := os.Lstat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("/run/netns/%s left by a %s test: %v", ns, mode, err)
					testbed.Store{Dir: dir}.Down(name)
				}
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
				t.Errorf("state files left by a %s test: %v", mode, files)
			}
		})
	}
}

func TestConcurrentTestbedsAreDistinct(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	var mu sync.Mutex
	names := map[string]bool{}
	inodes := map[uint64]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				bed := testbedtest.New(t, testbed.Topology{})
				exchange(t, bed.A, bed.B, false)
				mu.Lock()
				defer mu.Unlock()
				names[bed.Name] = true
				inodes[nsInode(bed.A)], inodes[nsInode(bed.B)] = true, true
			})
		}
	})
	if len(names) != 2 || len(inodes) != 4 {
		t.Fatalf("two concurrent testbeds got names %v and namespaces %v; want 2 names and 4 namespaces", names, inodes)
	}
}

func TestNameCollision(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	dir := t.TempDir()
	name := fmt.Sprintf("%s-collide-%d", testbedtest.Prefix, os.Getpid())
	bed := testbedtest.New(t, testbed.Topology{Name: name, Lifetime: testbed.Persistent, StateDir: dir})
	_, err := testbed.Up(t.Context(), testbed.Topology{Name: bed.Name, Lifetime: testbed.Persistent, StateDir: dir})
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "napilab testbed down "+name) {
		t.Fatalf("second Up(%s) = %v, want os.ErrExist naming the fix", name, err)
	}

	// A namespace of that name that napilab did not make (other state directory, same /run/netns) is refused
	// and left exactly as it was.
	_, err = testbed.Up(t.Context(), testbed.Topology{Name: name, Lifetime: testbed.Persistent, StateDir: t.TempDir()})
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "pick another testbed name") {
		t.Fatalf("Up over a foreign namespace = %v, want os.ErrExist", err)
	}
	if _, err := os.Stat(bed.A.NetNSPath()); err != nil {
		t.Fatalf("the existing namespace was touched: %v", err)
	}
	exchange(t, bed.A, bed.B, true)
}

func TestWithoutPrivilegesSaysSo(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t) // the child drops what the parent has
	cmd, out, _ := startHelper(t, "nopriv")
	var msg string
	for out.Scan() {
		msg += out.Text()
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 10 {
		t.Fatalf("unprivileged Up: %v (%s); want an error matching os.ErrPermission", err, msg)
	}
	if !strings.Contains(msg, "run as root") {
		t.Fatalf("unprivileged Up error %q does not say how to fix it", msg)
	}
}

// BenchmarkUpDown measures building and removing an Ephemeral testbed: the fixed cost every network test pays.
func BenchmarkUpDown(b *testing.B) {
	testenv.RequirePriv(b)
	for _, napi := range []bool{false, true} {
		b.Run(fmt.Sprint("napi=", napi), func(b *testing.B) {
			for b.Loop() {
				bed, err := testbed.Up(b.Context(), testbed.Topology{Prefix: testbedtest.Prefix, NAPI: napi})
				if err != nil {
					b.Fatal(err)
				}
				if err := bed.Down(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDo measures entering a host's namespace and coming back (a locked thread, two setns calls).
func BenchmarkDo(b *testing.B) {
	bed := testbedtest.New(b, testbed.Topology{})
	b.ReportAllocs()
	for b.Loop() {
		if err := bed.A.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

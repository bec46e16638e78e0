package netdevtest

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/netdev"
)

// kernelReplies loads the reply payloads captured from a real 6.18 kernel (shared with package netdev's tests).
func kernelReplies(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("../testdata/replies-6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if name, hx, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			if out[name], err = hex.DecodeString(hx); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	return out
}

// The fake must put the same bytes on the wire as the kernel for the same state.
func TestEncodesLikeLinux618(t *testing.T) {
	r := kernelReplies(t)
	f := New(t, Linux6_18)
	rx := netdev.QStats{Ifindex: 4, Scope: netdev.ScopeQueue, QueueType: netdev.QueueRX}
	rx.SetValue(netdev.RxPackets, 0x1a0d)
	rx.SetValue(netdev.RxBytes, 0x09f20163)
	for name, got := range map[string][]byte{
		"dev-get.eth0": encodeDevice(netdev.Device{Ifindex: 4, XDPZCMaxSegs: 1,
			XDPFeatures: netdev.XDPBasic | netdev.XDPRedirect | netdev.XDPXSKZeroCopy | netdev.XDPRXSG}),
		"dev-get.lo":                encodeDevice(netdev.Device{Ifindex: 1}),
		"queue-get.eth0.rx0":        encodeQueue(netdev.Queue{Ifindex: 4, Type: netdev.QueueRX, NAPIID: 257}),
		"queue-get.eth0.tx0":        encodeQueue(netdev.Queue{Ifindex: 4, Type: netdev.QueueTX}),
		"napi-get.257":              f.encodeNAPI(netdev.NAPI{ID: 257, Ifindex: 4}),
		"qstats-get.eth0.queue.rx0": encodeQStats(rx),
	} {
		if d := cmp.Diff(r[name], got); d != "" {
			t.Errorf("%s (-kernel +fake):\n%s", name, d)
		}
	}

	for _, op := range []struct {
		name string
		cmd  uint32
	}{{"napi-set", cmdNAPISet}, {"queue-get", cmdQueueGet}, {"qstats-get", cmdQStatsGet}} {
		msgs, err := f.getPolicy([]attr{
			{typ: unix.CTRL_ATTR_FAMILY_ID, data: binary.NativeEndian.AppendUint16(nil, FamilyID)},
			{typ: unix.CTRL_ATTR_OP, data: binary.NativeEndian.AppendUint32(nil, op.cmd)},
		})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for i, m := range msgs {
			got = append(got, hex.EncodeToString(m.Data))
			if b, ok := r[fmt.Sprintf("policy.%s.%d", op.name, i)]; ok {
				want = append(want, hex.EncodeToString(b))
			}
		}
		if b, ok := r[fmt.Sprintf("policy.%s.%d", op.name, len(msgs))]; ok {
			want = append(want, hex.EncodeToString(b))
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s policy dump (-kernel +fake):\n%s", op.name, d)
		}
	}
}

func newFake(t *testing.T, k Kernel) (*Family, *genetlink.Conn) {
	f := New(t, k)
	f.AddDevice(netdev.Device{Ifindex: 4}).
		AddQueue(netdev.Queue{Ifindex: 4, Type: netdev.QueueRX, NAPIID: 257}).
		AddNAPI(netdev.NAPI{ID: 257, Ifindex: 4})
	c := f.Dial()
	t.Cleanup(func() { c.Close() })
	return f, c
}

func execute(c *genetlink.Conn, family uint16, cmd uint8, flags netlink.HeaderFlags, as ...netlink.Attribute) ([]genetlink.Message, error) {
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		return nil, err
	}
	return c.Execute(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: 1}, Data: b}, family, flags)
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// The kernel's answers where a client can go wrong, as measured on 6.18 (gotchas 1, 3, 4).
func TestKernelLikeRefusals(t *testing.T) {
	_, c := newFake(t, Linux6_18)
	for _, tc := range []struct {
		name    string
		cmd     uint8
		flags   netlink.HeaderFlags
		attrs   []netlink.Attribute
		errno   unix.Errno
		message string
		offset  int
	}{
		{"queue dump filtered on attribute 1", cmdQueueGet, netlink.Request | netlink.Dump,
			[]netlink.Attribute{{Type: 1, Data: u32(4)}}, unix.EINVAL, "Unsupported attribute", 20},
		{"threaded busy-poll", cmdNAPISet, netlink.Request | netlink.Acknowledge,
			[]netlink.Attribute{{Type: 2, Data: u32(257)}, {Type: 8, Data: u32(2)}}, unix.ERANGE, "integer out of range", 28},
		{"defer beyond s32", cmdNAPISet, netlink.Request | netlink.Acknowledge,
			[]netlink.Attribute{{Type: 2, Data: u32(257)}, {Type: 5, Data: u32(1 << 31)}}, unix.ERANGE, "integer out of range", 28},
		{"3-byte gro-flush-timeout", cmdNAPISet, netlink.Request | netlink.Acknowledge,
			[]netlink.Attribute{{Type: 2, Data: u32(257)}, {Type: 6, Data: []byte{1, 2, 3}}}, unix.EINVAL, "invalid attribute length", 28},
		{"unknown NAPI", cmdNAPISet, netlink.Request | netlink.Acknowledge,
			[]netlink.Attribute{{Type: 2, Data: u32(9999)}}, unix.ENOENT, "", 20},
		{"unknown NAPI get", cmdNAPIGet, netlink.Request, []netlink.Attribute{{Type: 2, Data: u32(9999)}}, unix.ENOENT, "", 20},
		{"napi dump of an unknown device", cmdNAPIGet, netlink.Request | netlink.Dump,
			[]netlink.Attribute{{Type: 1, Data: u32(99)}}, unix.ENODEV, "", 0},
		{"qstats dump of an unknown device", cmdQStatsGet, netlink.Request | netlink.Dump,
			[]netlink.Attribute{{Type: 1, Data: u32(99)}}, unix.ENODEV, "", 20},
		{"dev-get of an unknown device", cmdDevGet, netlink.Request, []netlink.Attribute{{Type: 1, Data: u32(99)}}, unix.ENODEV, "", 0},
		{"queue beyond the queue count", cmdQueueGet, netlink.Request,
			[]netlink.Attribute{{Type: 1, Data: u32(7)}, {Type: 2, Data: u32(4)}, {Type: 3, Data: u32(0)}}, unix.EINVAL, "", 0},
		{"qstats scope reserved bit", cmdQStatsGet, netlink.Request | netlink.Dump,
			[]netlink.Attribute{{Type: 4, Data: u32(2)}}, unix.EINVAL, "reserved bit set", 20},
		{"qstats do", cmdQStatsGet, netlink.Request, nil, unix.EOPNOTSUPP, "", 0},
		{"unknown command", 16, netlink.Request, nil, unix.EOPNOTSUPP, "", 0},
		{"reserved header flag", cmdNAPIGet, netlink.Request | netlink.Replace, []netlink.Attribute{{Type: 2, Data: u32(257)}}, unix.EINVAL, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(c, FamilyID, tc.cmd, tc.flags, tc.attrs...)
			var oe *netlink.OpError
			if !errors.As(err, &oe) || !errors.Is(err, tc.errno) || oe.Message != tc.message || oe.Offset != tc.offset {
				t.Fatalf("got %v; want %v, message %q, offset %d", err, tc.errno, tc.message, tc.offset)
			}
		})
	}
}

func TestNAPISetNeedsACK(t *testing.T) {
	f, c := newFake(t, Linux6_18)
	_, err := execute(c, FamilyID, cmdNAPISet, netlink.Request,
		netlink.Attribute{Type: 2, Data: u32(257)}, netlink.Attribute{Type: 5, Data: u32(3)})
	if err == nil || !strings.Contains(err.Error(), "block forever") {
		t.Fatalf("napi-set without NLM_F_ACK: %v; want the would-block report", err)
	}
	if n, _ := f.NAPI(257); n.DeferHardIRQs != 0 {
		t.Errorf("napi-set without ACK changed the NAPI: %+v", n)
	}
	msgs, err := execute(c, FamilyID, cmdNAPISet, netlink.Request|netlink.Acknowledge,
		netlink.Attribute{Type: 2, Data: u32(257)}, netlink.Attribute{Type: 5, Data: u32(3)})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("napi-set with ACK: %d messages, %v; want the ACK alone", len(msgs), err)
	}
	if n, _ := f.NAPI(257); n.DeferHardIRQs != 3 {
		t.Errorf("napi-set did not apply: %+v", n)
	}
}

func TestGenerations(t *testing.T) {
	for _, tc := range []struct {
		k       Kernel
		errno   unix.Errno
		message string
	}{
		{Linux6_12, unix.EOPNOTSUPP, ""},
		{Linux6_13, unix.EINVAL, "Unknown attribute type"},
		{Linux6_18, 0, ""},
		{Linux6_19, 0, ""},
	} {
		t.Run(tc.k.Release, func(t *testing.T) {
			f, c := newFake(t, tc.k)
			_, err := execute(c, FamilyID, cmdNAPISet, netlink.Request|netlink.Acknowledge,
				netlink.Attribute{Type: 2, Data: u32(257)}, netlink.Attribute{Type: 8, Data: u32(1)})
			var oe *netlink.OpError
			switch {
			case tc.errno == 0 && err != nil:
				t.Fatalf("threaded=enabled: %v", err)
			case tc.errno != 0 && (!errors.Is(err, tc.errno) || !errors.As(err, &oe) || oe.Message != tc.message):
				t.Fatalf("threaded=enabled: %v; want %v %q", err, tc.errno, tc.message)
			}
			n, _ := f.NAPI(257)
			if n.HasPID != (tc.errno == 0) {
				t.Errorf("after threaded=enabled: %+v", n)
			}
		})
	}

	f, c := newFake(t, Linux6_19)
	if _, err := execute(c, FamilyID, cmdNAPISet, netlink.Request|netlink.Acknowledge,
		netlink.Attribute{Type: 2, Data: u32(257)}, netlink.Attribute{Type: 8, Data: u32(2)}); err != nil {
		t.Fatalf("6.19 threaded=busy-poll: %v", err)
	}
	if n, _ := f.NAPI(257); n.Threaded != netdev.ThreadedBusyPoll || !n.HasPID {
		t.Errorf("6.19 busy-poll did not start a kthread: %+v", n)
	}

	old := New(t, Linux6_2).Dial()
	defer old.Close()
	if _, err := old.GetFamily("netdev"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("6.2 family lookup: %v; want ENOENT", err)
	}
}

func TestRecordsRequests(t *testing.T) {
	f, c := newFake(t, Linux6_18)
	if _, err := execute(c, FamilyID, cmdNAPIGet, netlink.Request|netlink.Dump, netlink.Attribute{Type: 1, Data: u32(4)}); err != nil {
		t.Fatal(err)
	}
	want := []Request{{Family: FamilyID, Command: cmdNAPIGet, Flags: netlink.Request | netlink.Dump,
		Attrs: []byte{8, 0, 1, 0, 4, 0, 0, 0}}}
	if d := cmp.Diff(want, f.Requests()); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	if got, want := f.Requests()[0].String(), "napi-get dump 1=4"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (Request{Family: FamilyID, Command: cmdNAPISet, Flags: netlink.Request | netlink.Acknowledge,
		Attrs: []byte{8, 0, 2, 0, 1, 1, 0, 0, 12, 0, 6, 0, 0, 0xf2, 5, 0x2a, 1, 0, 0, 0, 7, 0, 5, 0, 1, 2, 3, 0}}).String(),
		"napi-set ack 2=257 6=5000000000 5=010203"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	f.ResetRequests()
	if got := f.Requests(); len(got) != 0 {
		t.Errorf("after ResetRequests: %v", got)
	}
}

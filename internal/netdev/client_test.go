package netdev_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/netdev/netdevtest"
)

// A device like the one the notes measured (virtio_net eth0, ifindex 4, NAPI 257 on rx0) plus a second NAPI
// with every optional attribute present.
func newFake(t *testing.T, k netdevtest.Kernel) *netdevtest.Family {
	f := netdevtest.New(t, k)
	f.AddDevice(netdev.Device{Ifindex: 4, XDPZCMaxSegs: 1,
		XDPFeatures:   netdev.XDPBasic | netdev.XDPRedirect | netdev.XDPXSKZeroCopy | netdev.XDPRXSG,
		XDPRXMetadata: netdev.XDPRXHash, XSKFeatures: netdev.XSKTxChecksum}).
		AddDevice(netdev.Device{Ifindex: 1}).
		AddQueue(netdev.Queue{ID: 0, Ifindex: 4, Type: netdev.QueueRX, NAPIID: 257, XSK: true}).
		AddQueue(netdev.Queue{ID: 0, Ifindex: 4, Type: netdev.QueueTX}).
		AddQueue(netdev.Queue{ID: 1, Ifindex: 4, Type: netdev.QueueRX, NAPIID: 258, DMABuf: 3, IOUring: true}).
		AddNAPI(netdev.NAPI{ID: 257, Ifindex: 4}).
		AddNAPI(netdev.NAPI{ID: 258, Ifindex: 4, IRQ: 0, HasIRQ: true, DeferHardIRQs: 100,
			GROFlushTimeout: 5 * time.Second, IRQSuspendTimeout: 20 * time.Millisecond,
			Threaded: netdev.ThreadedEnabled})
	return f
}

// le encodes u32 attributes as the kernel expects them on amd64 and arm64.
func le(typ uint16, v uint32) []byte {
	return []byte{8, 0, byte(typ), byte(typ >> 8), byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// Every operation's exact request bytes.
func TestRequestBytes(t *testing.T) {
	const (
		fam  = netdevtest.FamilyID
		req  = netlink.Request
		dump = netlink.Request | netlink.Dump
		ack  = netlink.Request | netlink.Acknowledge
	)
	for _, tc := range []struct {
		name string
		call func(c *netdev.Client) error
		want netdevtest.Request
	}{
		{"dev-get", func(c *netdev.Client) error { _, err := c.Device(4); return err },
			netdevtest.Request{Family: fam, Command: 1, Flags: req, Attrs: le(1, 4)}},
		{"dev-get dump", func(c *netdev.Client) error { _, err := c.Devices(); return err },
			netdevtest.Request{Family: fam, Command: 1, Flags: dump}},
		{"queue-get", func(c *netdev.Client) error { _, err := c.Queue(4, netdev.QueueTX, 0); return err },
			netdevtest.Request{Family: fam, Command: 10, Flags: req, Attrs: cat(le(1, 0), le(2, 4), le(3, 1))}},
		{"queue-get dump by ifindex (attribute 2)", func(c *netdev.Client) error { _, err := c.Queues(4); return err },
			netdevtest.Request{Family: fam, Command: 10, Flags: dump, Attrs: le(2, 4)}},
		{"queue-get dump of all", func(c *netdev.Client) error { _, err := c.Queues(0); return err },
			netdevtest.Request{Family: fam, Command: 10, Flags: dump}},
		{"napi-get", func(c *netdev.Client) error { _, err := c.NAPI(257); return err },
			netdevtest.Request{Family: fam, Command: 11, Flags: req, Attrs: le(2, 257)}},
		{"napi-get dump by ifindex (attribute 1)", func(c *netdev.Client) error { _, err := c.NAPIs(4); return err },
			netdevtest.Request{Family: fam, Command: 11, Flags: dump, Attrs: le(1, 4)}},
		{"napi-set all four", func(c *netdev.Client) error {
			return c.SetNAPI(257, netdev.NAPIConfig{DeferHardIRQs: new(uint32(100)),
				GROFlushTimeout: new(20 * time.Microsecond), IRQSuspendTimeout: new(20 * time.Millisecond),
				Threaded: new(netdev.ThreadedEnabled)})
		}, netdevtest.Request{Family: fam, Command: 14, Flags: ack,
			Attrs: cat(le(2, 257), le(5, 100), le(6, 20000), le(7, 20000000), le(8, 1))}},
		{"napi-set 8-byte NLA_UINT", func(c *netdev.Client) error {
			return c.SetNAPI(257, netdev.NAPIConfig{GROFlushTimeout: new(5 * time.Second)})
		}, netdevtest.Request{Family: fam, Command: 14, Flags: ack,
			Attrs: cat(le(2, 257), []byte{12, 0, 6, 0, 0x00, 0xf2, 0x05, 0x2a, 0x01, 0, 0, 0})}},
		{"napi-set threaded only", func(c *netdev.Client) error {
			return c.SetNAPI(258, netdev.NAPIConfig{Threaded: new(netdev.ThreadedDisabled)})
		}, netdevtest.Request{Family: fam, Command: 14, Flags: ack, Attrs: cat(le(2, 258), le(8, 0))}},
		{"qstats-get queue scope", func(c *netdev.Client) error { _, err := c.QStats(4, netdev.ScopeQueue); return err },
			netdevtest.Request{Family: fam, Command: 12, Flags: dump, Attrs: cat(le(1, 4), le(4, 1))}},
		{"qstats-get device scope of all", func(c *netdev.Client) error { _, err := c.QStats(0, netdev.ScopeDevice); return err },
			netdevtest.Request{Family: fam, Command: 12, Flags: dump}},
		{"feature probe", func(c *netdev.Client) error { _, err := c.Features(); return err },
			netdevtest.Request{Family: 0x10, Command: 10, Flags: dump,
				Attrs: cat([]byte{6, 0, 1, 0, fam, 0, 0, 0}, le(10, 14))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, netdevtest.Linux6_18)
			c := f.Client()
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]netdevtest.Request{tc.want}, f.Requests()); d != "" {
				t.Errorf("requests (-want +got):\n%s", d)
			}
		})
	}
}

// Every attribute decodes, optional ones absent differ from present zeros, and NLA_UINT comes in 4 or 8 bytes.
func TestDecodeThroughFake(t *testing.T) {
	f := newFake(t, netdevtest.Linux6_18)
	q := netdev.QStats{Ifindex: 4, Scope: netdev.ScopeQueue, QueueType: netdev.QueueRX, QueueID: 1}
	q.SetValue(netdev.RxPackets, 1<<33) // 8 bytes on the wire
	q.SetValue(netdev.RxHWDrops, 0)     // reported zero
	q.SetValue(netdev.TxWake, 9)
	dev := netdev.QStats{Ifindex: 4}
	dev.SetValue(netdev.RxBytes, 1500)
	f.AddQStats(q).AddQStats(dev)
	c := f.Client()

	devs, err := c.Devices()
	if err != nil {
		t.Fatal(err)
	}
	wantDevs := []netdev.Device{{Ifindex: 1}, {Ifindex: 4, XDPZCMaxSegs: 1,
		XDPFeatures:   netdev.XDPBasic | netdev.XDPRedirect | netdev.XDPXSKZeroCopy | netdev.XDPRXSG,
		XDPRXMetadata: netdev.XDPRXHash, XSKFeatures: netdev.XSKTxChecksum}}
	if d := cmp.Diff(wantDevs, devs); d != "" {
		t.Errorf("devices (-want +got):\n%s", d)
	}
	if d, err := c.Device(4); err != nil || d != wantDevs[1] {
		t.Errorf("Device(4) = %+v, %v", d, err)
	}

	qs, err := c.Queues(4)
	if err != nil {
		t.Fatal(err)
	}
	wantQs := []netdev.Queue{
		{ID: 0, Ifindex: 4, Type: netdev.QueueRX, NAPIID: 257, XSK: true},
		{ID: 0, Ifindex: 4, Type: netdev.QueueTX},
		{ID: 1, Ifindex: 4, Type: netdev.QueueRX, NAPIID: 258, DMABuf: 3, IOUring: true},
	}
	if d := cmp.Diff(wantQs, qs); d != "" {
		t.Errorf("queues (-want +got):\n%s", d)
	}
	if q, err := c.Queue(4, netdev.QueueRX, 1); err != nil || q != wantQs[2] {
		t.Errorf("Queue(4, rx, 1) = %+v, %v", q, err)
	}

	ns, err := c.NAPIs(4)
	if err != nil {
		t.Fatal(err)
	}
	wantNs := []netdev.NAPI{
		{ID: 257, Ifindex: 4},
		{ID: 258, Ifindex: 4, HasIRQ: true, PID: ns[1].PID, HasPID: true, DeferHardIRQs: 100,
			GROFlushTimeout: 5 * time.Second, IRQSuspendTimeout: 20 * time.Millisecond,
			Threaded: netdev.ThreadedEnabled},
	}
	if d := cmp.Diff(wantNs, ns); d != "" || ns[1].PID == 0 {
		t.Errorf("napis (-want +got):\n%s", d)
	}
	if n, err := c.NAPI(258); err != nil || n != wantNs[1] {
		t.Errorf("NAPI(258) = %+v, %v", n, err)
	}

	stats, err := c.QStats(4, netdev.ScopeQueue)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]netdev.QStats{q}, stats); d != "" {
		t.Errorf("queue qstats (-want +got):\n%s", d)
	}
	if v, ok := stats[0].Value(netdev.RxHWDrops); !ok || v != 0 {
		t.Errorf("rx-hw-drops = %d, %v; want a reported 0", v, ok)
	}
	if _, ok := stats[0].Value(netdev.TxPackets); ok {
		t.Error("tx-packets reads as reported")
	}
	if stats, err := c.QStats(0, netdev.ScopeDevice); err != nil || len(stats) != 1 || stats[0].RxBytes != 1500 {
		t.Errorf("device qstats = %+v, %v", stats, err)
	}
}

func TestSetNAPIAppliesAndReadsBack(t *testing.T) {
	f := newFake(t, netdevtest.Linux6_18)
	c := f.Client()
	cfg := netdev.NAPIConfig{DeferHardIRQs: new(uint32(2)), GROFlushTimeout: new(6 * time.Second),
		IRQSuspendTimeout: new(time.Duration(0)), Threaded: new(netdev.ThreadedEnabled)}
	if err := c.SetNAPI(257, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := c.NAPI(257)
	if err != nil {
		t.Fatal(err)
	}
	if n.DeferHardIRQs != 2 || n.GROFlushTimeout != 6*time.Second || n.Threaded != netdev.ThreadedEnabled || !n.HasPID {
		t.Errorf("after %v: %+v", cfg, n)
	}
	if err := c.SetNAPI(257, netdev.NAPIConfig{Threaded: new(netdev.ThreadedDisabled)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.NAPI(257); n.HasPID || n.Threaded != netdev.ThreadedDisabled || n.DeferHardIRQs != 2 {
		t.Errorf("after threaded=disabled: %+v; want no pid and the other settings kept", n)
	}
}

func TestThreadedBusyPoll(t *testing.T) {
	busy := netdev.NAPIConfig{Threaded: new(netdev.ThreadedBusyPoll)}

	t.Run("6.18 refuses and changes nothing", func(t *testing.T) {
		f := newFake(t, netdevtest.Linux6_18)
		c := f.Client()
		before, _ := f.NAPI(257)
		err := c.SetNAPI(257, netdev.NAPIConfig{DeferHardIRQs: new(uint32(9)), Threaded: busy.Threaded})
		var unsup *kernel.UnsupportedError
		if !errors.As(err, &unsup) || unsup.MinKernel != "6.19" || unsup.Feature != "threaded NAPI busy poll" {
			t.Fatalf("got %v; want threaded NAPI busy poll needing 6.19", err)
		}
		for _, want := range []string{"needs Linux 6.19", "napi-set napi 257", "integer out of range"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if !errors.Is(err, kernel.ErrNotSupported) {
			t.Errorf("%v does not match kernel.ErrNotSupported", err)
		}
		if after, _ := f.NAPI(257); after != before {
			t.Errorf("refused napi-set changed the NAPI: %+v -> %+v", before, after)
		}
	})

	t.Run("6.13 without per-NAPI threaded", func(t *testing.T) {
		c := newFake(t, netdevtest.Linux6_13).Client()
		var unsup *kernel.UnsupportedError
		if err := c.SetNAPI(257, busy); !errors.As(err, &unsup) || unsup.MinKernel != "6.19" {
			t.Errorf("busy-poll: %v; want needing 6.19", err)
		}
		err := c.SetNAPI(257, netdev.NAPIConfig{Threaded: new(netdev.ThreadedEnabled)})
		if !errors.As(err, &unsup) || unsup.MinKernel != "6.17" || !strings.Contains(err.Error(), "Unknown attribute type") {
			t.Errorf("threaded enabled: %v; want per-NAPI threaded needing 6.17", err)
		}
	})

	t.Run("6.19 starts a busy-polling kthread", func(t *testing.T) {
		c := newFake(t, netdevtest.Linux6_19).Client()
		if err := c.SetNAPI(257, busy); err != nil {
			t.Fatal(err)
		}
		if n, err := c.NAPI(257); err != nil || n.Threaded != netdev.ThreadedBusyPoll || !n.HasPID {
			t.Errorf("NAPI after busy-poll = %+v, %v", n, err)
		}
	})
}

func TestErrors(t *testing.T) {
	c := newFake(t, netdevtest.Linux6_18).Client()
	for _, tc := range []struct {
		name string
		call func() error
		is   error
		text []string
	}{
		{"unknown NAPI", func() error { _, err := c.NAPI(9999); return err }, os.ErrNotExist,
			[]string{"napi-get napi 9999", "no such file or directory", "no NAPI instance has id 9999"}},
		{"napi-set of an unknown NAPI", func() error {
			return c.SetNAPI(9999, netdev.NAPIConfig{DeferHardIRQs: new(uint32(1))})
		}, os.ErrNotExist, []string{"napi-set napi 9999", "no NAPI instance has id 9999"}},
		{"unknown device", func() error { _, err := c.Device(99); return err }, os.ErrNotExist,
			[]string{"dev-get ifindex 99", "no network device has ifindex 99"}},
		{"NAPIs of an unknown device", func() error { _, err := c.NAPIs(99); return err }, os.ErrNotExist,
			[]string{"napi-get dump ifindex 99", "no such device", "no network device has ifindex 99"}},
		{"queues of an unknown device", func() error { _, err := c.Queues(99); return err }, os.ErrNotExist,
			[]string{"queue-get dump ifindex 99"}},
		{"qstats of an unknown device", func() error { _, err := c.QStats(99, netdev.ScopeDevice); return err },
			os.ErrNotExist, []string{"qstats-get dump ifindex 99"}},
		{"queue beyond the count", func() error { _, err := c.Queue(4, netdev.QueueRX, 7); return err },
			os.ErrNotExist, []string{"queue-get ifindex 4 rx queue 7", "device 4 has no rx queue 7"}},
		{"defer beyond the kernel's limit", func() error {
			return c.SetNAPI(257, netdev.NAPIConfig{DeferHardIRQs: new(uint32(1 << 31))})
		}, nil, []string{"defer-hard-irqs 2147483648 exceeds the kernel's limit of 2147483647"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("got %v; want an error matching %v", err, tc.is)
			}
			for _, s := range tc.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestPermissionDenied(t *testing.T) {
	f := newFake(t, netdevtest.Linux6_18).DenyAdmin()
	c := f.Client()
	err := c.SetNAPI(257, netdev.NAPIConfig{DeferHardIRQs: new(uint32(1))})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "napi-set needs CAP_NET_ADMIN: run as root") {
		t.Fatalf("got %v; want permission denied with the fix", err)
	}
	if _, err := c.NAPI(257); err != nil {
		t.Errorf("napi-get is not privileged: %v", err)
	}
}

func TestOldKernels(t *testing.T) {
	_, err := netdev.NewClient(netdevtest.New(t, netdevtest.Linux6_2).Dial())
	var unsup *kernel.UnsupportedError
	if !errors.As(err, &unsup) || unsup.MinKernel != "6.3" || !errors.Is(err, kernel.ErrNotSupported) {
		t.Errorf("6.2: %v; want the netdev family needing 6.3", err)
	}

	c := newFake(t, netdevtest.Linux6_12).Client()
	err = c.SetNAPI(257, netdev.NAPIConfig{DeferHardIRQs: new(uint32(1))})
	if !errors.As(err, &unsup) || unsup.MinKernel != "6.13" || !strings.Contains(err.Error(), "napi-set") {
		t.Errorf("6.12 napi-set: %v; want per-NAPI configuration needing 6.13", err)
	}
	// 6.12 has no threaded attribute in napi-get: a kthread pid is the only sign.
	if n, err := c.NAPI(258); err != nil || n.Threaded != netdev.ThreadedEnabled || !n.HasPID {
		t.Errorf("6.12 threaded NAPI = %+v, %v", n, err)
	}
}

func TestFeatures(t *testing.T) {
	for _, tc := range []struct {
		k    netdevtest.Kernel
		want netdev.Features
	}{
		{netdevtest.Linux6_12, netdev.Features{}},
		{netdevtest.Linux6_13, netdev.Features{NAPISet: true, IRQSuspendTimeout: true}},
		{netdevtest.Linux6_18, netdev.Features{NAPISet: true, IRQSuspendTimeout: true, PerNAPIThreaded: true}},
		{netdevtest.Linux6_19, netdev.Features{NAPISet: true, IRQSuspendTimeout: true, PerNAPIThreaded: true,
			ThreadedBusyPoll: true}},
	} {
		t.Run(tc.k.Release, func(t *testing.T) {
			f := newFake(t, tc.k)
			before, _ := f.NAPI(258)
			c := f.Client()
			for range 2 {
				got, err := c.Features()
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("Features() = %+v, want %+v", got, tc.want)
				}
			}
			reqs := f.Requests()
			if len(reqs) != 1 || reqs[0].Family != 0x10 {
				t.Errorf("probing twice sent %+v; want one policy request", reqs)
			}
			if after, _ := f.NAPI(258); after != before {
				t.Errorf("probing changed a NAPI: %+v -> %+v", before, after)
			}
		})
	}
}

package ethtool_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/ethtool/ethtooltest"
	"github.com/napilab/napilab/internal/kernel"
)

// Attribute bytes as the kernel expects them (little-endian hosts): length, type, payload, padding to 4.
var (
	// ETHTOOL_A_*_HEADER (1 | NLA_F_NESTED) holding ETHTOOL_A_HEADER_DEV_NAME "va\0".
	headerVa = []byte{0x0c, 0x00, 0x01, 0x80, 0x07, 0x00, 0x02, 0x00, 'v', 'a', 0x00, 0x00}
	// The same header holding ETHTOOL_A_HEADER_DEV_INDEX 7.
	headerIndex7 = []byte{0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00}
	// The header holding "eth0\0".
	headerEth0 = []byte{0x10, 0x00, 0x01, 0x80, 0x09, 0x00, 0x02, 0x00, 'e', 't', 'h', '0', 0x00, 0x00, 0x00, 0x00}
)

func u32Attr(typ uint16, v uint32) []byte {
	return []byte{0x08, 0x00, byte(typ), byte(typ >> 8), byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

func u8Attr(typ uint16, v uint8) []byte {
	return []byte{0x05, 0x00, byte(typ), byte(typ >> 8), v, 0x00, 0x00, 0x00}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func newFake() *ethtooltest.Family {
	return ethtooltest.New(ethtooltest.Veth(7, "va", 4, 4), ethtooltest.VirtioNet(2, "eth0", 1, 4))
}

func get(cmd uint8, attrs []byte) ethtooltest.Request {
	return ethtooltest.Request{Command: cmd, Flags: netlink.Request, Attrs: attrs}
}

func set(cmd uint8, attrs []byte) ethtooltest.Request {
	return ethtooltest.Request{Command: cmd, Flags: netlink.Request | netlink.Acknowledge, Attrs: attrs}
}

func checkRequests(t *testing.T, f *ethtooltest.Family, want ...ethtooltest.Request) {
	t.Helper()
	if diff := cmp.Diff(want, f.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestChannelsGet(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	got, err := c.Channels(ethtool.Device{Name: "va"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (ethtool.Channels{RX: 4, TX: 4, RXMax: 4, TXMax: 4}); got != want {
		t.Errorf("veth channels = %+v, want %+v", got, want)
	}
	got, err = c.Channels(ethtool.Device{Index: 7})
	if err != nil || got.RXMax != 4 {
		t.Errorf("by ifindex: %+v, %v", got, err)
	}
	got, err = c.Channels(ethtool.Device{Name: "eth0"})
	if want := (ethtool.Channels{Combined: 1, CombinedMax: 4}); err != nil || got != want {
		t.Errorf("virtio channels = %+v, %v; want %+v", got, err, want)
	}
	checkRequests(t, f,
		get(unix.ETHTOOL_MSG_CHANNELS_GET, headerVa),
		get(unix.ETHTOOL_MSG_CHANNELS_GET, headerIndex7),
		get(unix.ETHTOOL_MSG_CHANNELS_GET, headerEth0))
}

// TestSetChannelsSendsOnlyChanges sets rx=2 tx=2 on the veth: the client reads first, then sends exactly the two
// counts that change, with NLM_F_ACK.
func TestSetChannelsSendsOnlyChanges(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	va := ethtool.Device{Name: "va"}
	if err := c.SetChannels(va, ethtool.Channels{RX: 2, TX: 2}); err != nil {
		t.Fatal(err)
	}
	checkRequests(t, f,
		get(unix.ETHTOOL_MSG_CHANNELS_GET, headerVa),
		set(unix.ETHTOOL_MSG_CHANNELS_SET, cat(headerVa,
			u32Attr(unix.ETHTOOL_A_CHANNELS_RX_COUNT, 2), u32Attr(unix.ETHTOOL_A_CHANNELS_TX_COUNT, 2))))
	if ch := f.Device("va").Channels; ch.RX != 2 || ch.TX != 2 {
		t.Errorf("fake state after set = %+v", ch)
	}
	// Setting what is already there sends nothing after the read.
	if err := c.SetChannels(va, ethtool.Channels{RX: 2, TX: 2, RXMax: 99}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Requests()); n != 3 {
		t.Errorf("%d requests after an unchanged set, want 3 (the second set is a read only)", n)
	}
}

func TestSetChannelsKernelRefusals(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	va := ethtool.Device{Name: "va"}
	err := c.SetChannels(va, ethtool.Channels{RX: 4, TX: 4, Combined: 2})
	want := "channels-set on va: requested channel count exceeds maximum (invalid argument); " +
		"va allows at most rx 4, tx 4, other 0, combined 0"
	if !errors.Is(err, unix.EINVAL) || err == nil || err.Error() != want {
		t.Errorf("combined=2 on veth:\n got %v\nwant %s", err, want)
	}
	err = c.SetChannels(va, ethtool.Channels{})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "would result in no RX or TX channel being configured") {
		t.Errorf("no channels at all: %v", err)
	}
	if ch := f.Device("va").Channels; ch.RX != 4 || ch.TX != 4 || ch.Combined != 0 {
		t.Errorf("refused sets changed the fake: %+v", ch)
	}
	last := f.Requests()[len(f.Requests())-1]
	if want := cat(headerVa, u32Attr(unix.ETHTOOL_A_CHANNELS_RX_COUNT, 0), u32Attr(unix.ETHTOOL_A_CHANNELS_TX_COUNT, 0)); !cmp.Equal(last.Attrs, want) {
		t.Errorf("last request % x, want % x", last.Attrs, want)
	}
}

// TestVethLacksRingsAndCoalescing checks the error callers tolerate: kernel.ErrNotSupported naming the op, the
// driver and the device.
func TestVethLacksRingsAndCoalescing(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	va := ethtool.Device{Name: "va"}
	_, errRings := c.Rings(va)
	_, errCoalesce := c.Coalesce(va)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errRings, "rings-get is not supported by driver veth on va"},
		{c.SetRings(va, ethtool.Rings{RX: 1024}), "rings-set is not supported by driver veth on va"},
		{errCoalesce, "coalesce-get is not supported by driver veth on va"},
		{c.SetCoalesce(va, ethtool.Coalesce{RXUsecs: 0}), "coalesce-set is not supported by driver veth on va"},
	} {
		if !errors.Is(tc.err, kernel.ErrNotSupported) || tc.err.Error() != tc.want {
			t.Errorf("error = %v, want kernel.ErrNotSupported saying %q", tc.err, tc.want)
		}
		var e *ethtool.Error
		if !errors.As(tc.err, &e) || e.Driver != "veth" || !errors.Is(e.Err, unix.EOPNOTSUPP) {
			t.Errorf("error %v is not an *ethtool.Error with driver and errno", tc.err)
		}
	}
}

func TestRingsVirtio(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	eth0 := ethtool.Device{Name: "eth0"}
	r, err := c.Rings(eth0)
	if want := (ethtool.Rings{RX: 256, TX: 256, RXMax: 256, TXMax: 256}); err != nil || r != want {
		t.Fatalf("rings = %+v, %v; want %+v (the TX push attribute must be skipped)", r, err, want)
	}
	err = c.SetRings(eth0, ethtool.Rings{RX: 1024, TX: 256})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "rings-set on eth0: requested ring size exceeds maximum") ||
		!strings.HasSuffix(err.Error(), "eth0 allows at most rx 256, rx-mini 0, rx-jumbo 0, tx 256") {
		t.Errorf("rx 1024: %v", err)
	}
	if err := c.SetRings(eth0, ethtool.Rings{RX: 128, TX: 256}); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if want := set(unix.ETHTOOL_MSG_RINGS_SET, cat(headerEth0, u32Attr(unix.ETHTOOL_A_RINGS_RX, 128))); !cmp.Equal(reqs[len(reqs)-1], want) {
		t.Errorf("rings-set request = %+v, want %+v", reqs[len(reqs)-1], want)
	}
	if got := f.Device("eth0").Rings.RX; got != 128 {
		t.Errorf("fake rx ring = %d, want 128", got)
	}
}

// TestCoalesceVirtio follows the seed's `ethtool -C eth0 adaptive-rx off adaptive-tx off rx-usecs 0 tx-usecs 0`
// on a driver that does not support adaptive-tx: unchanged parameters are not sent, so the request succeeds.
func TestCoalesceVirtio(t *testing.T) {
	f := newFake()
	c := f.Client(t)
	eth0 := ethtool.Device{Name: "eth0"}
	orig, err := c.Coalesce(eth0)
	if want := (ethtool.Coalesce{RXMaxFrames: 1, TXMaxFrames: 1}); err != nil || orig != want {
		t.Fatalf("coalesce = %+v, %v; want %+v", orig, err, want)
	}
	want := orig
	want.RXUsecs, want.AdaptiveRX = 8, true
	if err := c.SetCoalesce(eth0, want); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Coalesce(eth0); err != nil || got != want {
		t.Fatalf("coalesce = %+v, %v; want %+v", got, err, want)
	}
	seed := orig // adaptive-rx off adaptive-tx off rx-usecs 0 tx-usecs 0
	if err := c.SetCoalesce(eth0, seed); err != nil {
		t.Fatalf("seed's -C with adaptive-tx off on virtio: %v", err)
	}
	checkRequests(t, f,
		get(unix.ETHTOOL_MSG_COALESCE_GET, headerEth0),
		get(unix.ETHTOOL_MSG_COALESCE_GET, headerEth0),
		set(unix.ETHTOOL_MSG_COALESCE_SET, cat(headerEth0, u32Attr(unix.ETHTOOL_A_COALESCE_RX_USECS, 8),
			u8Attr(unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, 1))),
		get(unix.ETHTOOL_MSG_COALESCE_GET, headerEth0),
		get(unix.ETHTOOL_MSG_COALESCE_GET, headerEth0),
		set(unix.ETHTOOL_MSG_COALESCE_SET, cat(headerEth0, u32Attr(unix.ETHTOOL_A_COALESCE_RX_USECS, 0),
			u8Attr(unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, 0))))
	err = c.SetCoalesce(eth0, ethtool.Coalesce{AdaptiveTX: true})
	if !errors.Is(err, unix.EINVAL) || err.Error() != "coalesce-set on eth0: cannot modify an unsupported parameter (invalid argument)" {
		t.Errorf("adaptive-tx on virtio: %v", err)
	}
}

func TestUnknownDevice(t *testing.T) {
	c := newFake().Client(t)
	_, err := c.Channels(ethtool.Device{Name: "nope"})
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "channels-get on nope: no device matches name (no such device); check the device name") {
		t.Errorf("unknown name: %v", err)
	}
	_, err = c.Channels(ethtool.Device{Index: 7, Name: "eth0"})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ifindex and name do not match") {
		t.Errorf("mismatched index and name: %v", err)
	}
	_, err = c.Coalesce(ethtool.Device{})
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "coalesce-get on ifindex 0: device not specified") {
		t.Errorf("no device: %v", err)
	}
}

func TestFamilyAbsent(t *testing.T) {
	f := newFake()
	f.Absent = true
	_, err := ethtool.NewClient(f.Conn(), nil)
	var ue *kernel.UnsupportedError
	if !errors.Is(err, kernel.ErrNotSupported) || !errors.As(err, &ue) || ue.MinKernel != "5.6" {
		t.Errorf("missing family: %v", err)
	}
}

func TestErrorWithoutDriver(t *testing.T) {
	f := newFake()
	c, err := ethtool.NewClient(f.Conn(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Rings(ethtool.Device{Index: 7})
	if err == nil || err.Error() != "rings-get is not supported by the driver on ifindex 7" {
		t.Errorf("unknown driver: %v", err)
	}
}

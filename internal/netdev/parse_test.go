package netdev

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// captured returns the reply payloads recorded from a real 6.18 kernel in testdata.
func captured(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/replies-6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, hx, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b
	}
	return out
}

func msgs(payloads ...[]byte) []genetlink.Message {
	out := make([]genetlink.Message, len(payloads))
	for i, p := range payloads {
		out[i] = genetlink.Message{Header: genetlink.Header{Version: 1}, Data: p}
	}
	return out
}

// attrs encodes attributes given as (type, value bytes) for hand-built replies.
func attrs(t testing.TB, as ...netlink.Attribute) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func TestParseCapturedReplies(t *testing.T) {
	r := captured(t)

	devs, err := parseDevices(msgs(r["dev-get.eth0"], r["dev-get.lo"]))
	if err != nil {
		t.Fatal(err)
	}
	wantDevs := []Device{
		{Ifindex: 4, XDPFeatures: XDPBasic | XDPRedirect | XDPXSKZeroCopy | XDPRXSG, XDPZCMaxSegs: 1},
		{Ifindex: 1},
	}
	if d := cmp.Diff(wantDevs, devs); d != "" {
		t.Errorf("devices (-want +got):\n%s", d)
	}

	qs, err := parseQueues(msgs(r["queue-get.eth0.rx0"], r["queue-get.eth0.tx0"]))
	if err != nil {
		t.Fatal(err)
	}
	wantQs := []Queue{{ID: 0, Ifindex: 4, Type: QueueRX, NAPIID: 257}, {ID: 0, Ifindex: 4, Type: QueueTX}}
	if d := cmp.Diff(wantQs, qs); d != "" {
		t.Errorf("queues (-want +got):\n%s", d)
	}

	ns, err := parseNAPIs(msgs(r["napi-get.257"]))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]NAPI{{ID: 257, Ifindex: 4}}, ns); d != "" {
		t.Errorf("napis (-want +got):\n%s", d)
	}

	stats, err := parseQStats(msgs(r["qstats-get.eth0.queue.rx0"], r["qstats-get.eth0.queue.tx0"],
		r["qstats-get.eth0.device"]))
	if err != nil {
		t.Fatal(err)
	}
	rx := QStats{Ifindex: 4, Scope: ScopeQueue, QueueType: QueueRX}
	rx.SetValue(RxPackets, 0x1a0d)
	rx.SetValue(RxBytes, 0x09f20163)
	tx := QStats{Ifindex: 4, Scope: ScopeQueue, QueueType: QueueTX}
	tx.SetValue(TxPackets, 0x1232)
	tx.SetValue(TxBytes, 0x06f667)
	tx.SetValue(TxStop, 0)
	tx.SetValue(TxWake, 0)
	dev := QStats{Ifindex: 4}
	for _, c := range []Counter{RxPackets, RxBytes, TxPackets, TxBytes, TxStop, TxWake} {
		v, _ := rx.Value(c)
		w, _ := tx.Value(c)
		dev.SetValue(c, v+w)
	}
	if d := cmp.Diff([]QStats{rx, tx, dev}, stats); d != "" {
		t.Errorf("qstats (-want +got):\n%s", d)
	}
	if got := stats[1].Reported.String(); got != "tx-packets,tx-bytes,tx-stop,tx-wake" {
		t.Errorf("reported counters = %q", got)
	}
	if v, ok := stats[1].Value(TxStop); !ok || v != 0 {
		t.Errorf("tx-stop = %d, %v; want a reported zero", v, ok)
	}
	if _, ok := stats[1].Value(RxPackets); ok {
		t.Error("rx-packets of a tx queue reads as reported")
	}
}

func capturedPolicy(t *testing.T, op string) []genetlink.Message {
	r := captured(t)
	var payloads [][]byte
	for i := 0; ; i++ {
		p, ok := r[fmt.Sprintf("policy.%s.%d", op, i)]
		if !ok {
			return msgs(payloads...)
		}
		payloads = append(payloads, p)
	}
}

func TestParseCapturedPolicy(t *testing.T) {
	set := capturedPolicy(t, "napi-set")
	pol, err := parsePolicy(set, cmdNAPISet, ctrlAttrPolicyDo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint16]attrPolicy{
		attrNAPIID:                {Type: nlAttrTypeU32, Max: math.MaxUint32, HasMax: true},
		attrNAPIDeferHardIRQs:     {Type: nlAttrTypeU32, Max: math.MaxInt32, HasMax: true},
		attrNAPIGROFlushTimeout:   {Type: nlAttrTypeUint, Max: math.MaxUint64, HasMax: true},
		attrNAPIIRQSuspendTimeout: {Type: nlAttrTypeUint, Max: math.MaxUint64, HasMax: true},
		attrNAPIThreaded:          {Type: nlAttrTypeU32, Max: 1, HasMax: true},
	}
	if d := cmp.Diff(want, pol); d != "" {
		t.Errorf("napi-set policy on 6.18 (-want +got):\n%s", d)
	}
	if _, err := parsePolicy(set[1:], cmdNAPISet, ctrlAttrPolicyDo); err == nil {
		t.Error("a policy dump without the operation's index parsed")
	}
	if _, err := parsePolicy(set, cmdNAPISet, ctrlAttrPolicyDump); err == nil {
		t.Error("napi-set has no dump policy, but one parsed")
	}

	// queue-get has a do policy (index 0) and a dump policy (index 1) that filters on attribute 2.
	queue := capturedPolicy(t, "queue-get")
	if pol, err := parsePolicy(queue, cmdQueueGet, ctrlAttrPolicyDump); err != nil || len(pol) != 1 ||
		pol[attrQueueIfindex].Type != nlAttrTypeU32 {
		t.Errorf("queue-get dump policy = %+v, %v; want only ifindex (2)", pol, err)
	}
	if pol, err := parsePolicy(queue, cmdQueueGet, ctrlAttrPolicyDo); err != nil || len(pol) != 3 {
		t.Errorf("queue-get do policy = %+v, %v; want id, ifindex, type", pol, err)
	}

	// qstats-get is dump-only, and the kernel names the operation 0 in CTRL_ATTR_OP_POLICY.
	pol, err = parsePolicy(capturedPolicy(t, "qstats-get"), cmdQStatsGet, ctrlAttrPolicyDump)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[uint16]attrPolicy{
		attrQStatsIfindex: {Type: nlAttrTypeU32, Max: math.MaxUint32, HasMax: true},
		attrQStatsScope:   {Type: nlAttrTypeUint},
	}, pol); d != "" {
		t.Errorf("qstats-get dump policy (-want +got):\n%s", d)
	}
}

// NLA_UINT attributes arrive as 4 or 8 bytes and must decode either way; any other width is an error.
func TestParseNLAUint(t *testing.T) {
	const big = 5 * time.Second // 5e9 ns does not fit in 32 bits
	for _, tc := range []struct {
		name string
		gro  []byte
		want time.Duration
		err  bool
	}{
		{"4 bytes", u32(20000), 20 * time.Microsecond, false},
		{"8 bytes", u64(uint64(big)), big, false},
		{"8 bytes small", u64(7), 7, false},
		{"2 bytes", []byte{1, 0}, 0, true},
		{"5 bytes", []byte{1, 0, 0, 0, 0}, 0, true},
		{"beyond time.Duration", u64(math.MaxUint64), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := attrs(t, netlink.Attribute{Type: attrNAPIID, Data: u32(9)},
				netlink.Attribute{Type: attrNAPIGROFlushTimeout, Data: tc.gro},
				netlink.Attribute{Type: attrNAPIIRQSuspendTimeout, Data: tc.gro})
			ns, err := parseNAPIs(msgs(data))
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "napi-get reply 1 of 1") {
					t.Fatalf("want a parse error naming the reply, got %v, %+v", err, ns)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ns[0].GROFlushTimeout != tc.want || ns[0].IRQSuspendTimeout != tc.want {
				t.Errorf("gro %v, irq-suspend %v; want %v", ns[0].GROFlushTimeout, ns[0].IRQSuspendTimeout, tc.want)
			}
		})
	}

	data := attrs(t, netlink.Attribute{Type: attrQStatsIfindex, Data: u32(3)},
		netlink.Attribute{Type: uint16(RxBytes), Data: u64(1 << 40)},
		netlink.Attribute{Type: uint16(TxBytes), Data: u32(12)})
	qs, err := parseQStats(msgs(data))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := qs[0].Value(RxBytes); v != 1<<40 || qs[0].TxBytes != 12 {
		t.Errorf("counters rx-bytes %d tx-bytes %d", qs[0].RxBytes, qs[0].TxBytes)
	}
}

func TestParseOptionalAttributes(t *testing.T) {
	absent := attrs(t, netlink.Attribute{Type: attrNAPIID, Data: u32(300)},
		netlink.Attribute{Type: attrNAPIThreaded, Data: u32(0)})
	zero := attrs(t, netlink.Attribute{Type: attrNAPIID, Data: u32(301)},
		netlink.Attribute{Type: attrNAPIIRQ, Data: u32(0)},
		netlink.Attribute{Type: attrNAPIPID, Data: u32(0)},
		netlink.Attribute{Type: attrNAPIThreaded, Data: u32(0)})
	ns, err := parseNAPIs(msgs(absent, zero))
	if err != nil {
		t.Fatal(err)
	}
	want := []NAPI{{ID: 300}, {ID: 301, HasIRQ: true, HasPID: true}}
	if d := cmp.Diff(want, ns); d != "" {
		t.Errorf("absent vs zero (-want +got):\n%s", d)
	}
}

// Before 6.17 napi-get had no threaded attribute: a kthread pid is the only sign of threaded NAPI.
func TestParseThreadedDerivedFromPID(t *testing.T) {
	old := attrs(t, netlink.Attribute{Type: attrNAPIID, Data: u32(5)},
		netlink.Attribute{Type: attrNAPIPID, Data: u32(77)})
	oldIdle := attrs(t, netlink.Attribute{Type: attrNAPIID, Data: u32(6)})
	ns, err := parseNAPIs(msgs(old, oldIdle))
	if err != nil {
		t.Fatal(err)
	}
	if ns[0].Threaded != ThreadedEnabled || ns[1].Threaded != ThreadedDisabled {
		t.Errorf("derived threaded = %v, %v; want enabled, disabled", ns[0].Threaded, ns[1].Threaded)
	}
}

func TestParseSkipsUnknownAttributes(t *testing.T) {
	future := attrs(t, netlink.Attribute{Type: attrQueueID, Data: u32(3)},
		netlink.Attribute{Type: 99, Data: []byte{1, 2, 3}},
		netlink.Attribute{Type: 8 | netlink.Nested, Data: attrs(t, netlink.Attribute{Type: 1, Data: u32(1)})},
		netlink.Attribute{Type: attrQueueXSK | netlink.Nested},
		netlink.Attribute{Type: attrQueueIOUring | netlink.Nested},
		netlink.Attribute{Type: attrQueueDMABuf, Data: u32(2)})
	qs, err := parseQueues(msgs(future))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Queue{{ID: 3, XSK: true, IOUring: true, DMABuf: 2}}, qs); d != "" {
		t.Errorf("queue (-want +got):\n%s", d)
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for name, fn := range map[string]func([]genetlink.Message) error{
		"dev":    func(m []genetlink.Message) error { _, err := parseDevices(m); return err },
		"queue":  func(m []genetlink.Message) error { _, err := parseQueues(m); return err },
		"napi":   func(m []genetlink.Message) error { _, err := parseNAPIs(m); return err },
		"qstats": func(m []genetlink.Message) error { _, err := parseQStats(m); return err },
	} {
		short := attrs(t, netlink.Attribute{Type: 1, Data: []byte{1, 2}}) // every family's attribute 1 is a u32
		if err := fn(msgs(short)); err == nil {
			t.Errorf("%s: a 2-byte u32 parsed", name)
		}
		if err := fn(msgs([]byte{9, 0, 1})); err == nil {
			t.Errorf("%s: a truncated attribute header parsed", name)
		}
	}
}

func TestAttrAt(t *testing.T) {
	req, err := napiSetRequest(259, NAPIConfig{DeferHardIRQs: new(uint32(1)), Threaded: new(ThreadedBusyPoll)})
	if err != nil {
		t.Fatal(err)
	}
	for off, want := range map[int]uint16{20: attrNAPIID, 28: attrNAPIDeferHardIRQs, 36: attrNAPIThreaded} {
		if got, ok := attrAt(req, off); !ok || got != want {
			t.Errorf("attrAt(%d) = %d, %v; want %d", off, got, ok, want)
		}
	}
	for _, off := range []int{0, 24, 44, 1000} {
		if got, ok := attrAt(req, off); ok {
			t.Errorf("attrAt(%d) = %d; want no attribute", off, got)
		}
	}
}

// Which kernel refusals of napi-set mean "this kernel lacks the setting", and which version to ask for.
func TestNAPISetUnsupported(t *testing.T) {
	busy := NAPIConfig{Threaded: new(ThreadedBusyPoll)}
	enabled := NAPIConfig{Threaded: new(ThreadedEnabled)}
	suspend := NAPIConfig{IRQSuspendTimeout: new(time.Millisecond)}
	deferred := NAPIConfig{DeferHardIRQs: new(uint32(5)), IRQSuspendTimeout: new(time.Millisecond)}
	nlErr := func(errno unix.Errno, off int) error {
		return &netlink.OpError{Op: "receive", Err: errno, Offset: off, Message: "integer out of range"}
	}
	for _, tc := range []struct {
		name string
		cfg  NAPIConfig
		err  error
		want string // MinKernel, "" for not an unsupported feature
	}{
		{"busy-poll ERANGE blamed", busy, nlErr(unix.ERANGE, 28), "6.19"},
		{"busy-poll EINVAL unknown attribute", busy, nlErr(unix.EINVAL, 28), "6.19"},
		{"busy-poll without extack", busy, unix.ERANGE, "6.19"},
		{"threaded EINVAL blamed", enabled, nlErr(unix.EINVAL, 28), "6.17"},
		{"threaded EINVAL without extack", enabled, unix.EINVAL, "6.17"},
		{"irq-suspend EINVAL blamed", suspend, nlErr(unix.EINVAL, 28), "6.13"},
		{"irq-suspend EINVAL without extack", suspend, unix.EINVAL, "6.13"},
		{"irq-suspend blamed behind defer", deferred, nlErr(unix.EINVAL, 36), "6.13"},
		{"defer blamed", deferred, nlErr(unix.EINVAL, 28), ""},
		{"id blamed", busy, nlErr(unix.EINVAL, 20), ""},
		{"ENOENT", busy, unix.ENOENT, ""},
		{"EPERM", busy, unix.EPERM, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := napiSetRequest(1, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := napiSetUnsupported(req, tc.cfg, tc.err)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("got unsupported %v, want another failure", got)
			case tc.want != "" && (got == nil || got.MinKernel != tc.want):
				t.Fatalf("got %v, want a feature of Linux %s", got, tc.want)
			case got != nil && !errors.Is(got, kernel.ErrNotSupported):
				t.Fatalf("%v does not match ErrNotSupported", got)
			}
		})
	}
}

func TestRequestValidation(t *testing.T) {
	for name, cfg := range map[string]NAPIConfig{
		"defer beyond s32":     {DeferHardIRQs: new(uint32(math.MaxInt32 + 1))},
		"negative gro":         {GROFlushTimeout: new(-time.Nanosecond)},
		"negative irq-suspend": {IRQSuspendTimeout: new(-time.Second)},
		"unknown threaded":     {Threaded: new(Threaded(3))},
	} {
		if _, err := napiSetRequest(1, cfg); err == nil {
			t.Errorf("%s: napiSetRequest(%v) accepted", name, cfg)
		}
	}
	if _, err := queueGetRequest(1, QueueType(2), 0); err == nil {
		t.Error("queue type 2 accepted")
	}
	if _, err := qstatsRequest(1, Scope(2)); err == nil {
		t.Error("qstats scope 2 accepted")
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		XDPFeatures(0x2b).String():                     "basic|redirect|xsk-zerocopy|rx-sg",
		XDPFeatures(0).String():                        "none",
		XDPFeatures(1 << 9).String():                   "0x200",
		(XDPRXTimestamp | XDPRXVLANTag).String():       "timestamp|vlan-tag",
		(XSKTxChecksum | XSKTxLaunchTimeFIFO).String(): "tx-checksum|tx-launch-time-fifo",
		ThreadedBusyPoll.String():                      "busy-poll",
		Threaded(7).String():                           "threaded(7)",
		QueueTX.String():                               "tx",
		ScopeQueue.String():                            "queue",
		TxWake.String():                                "tx-wake",
		RxHWGROWireBytes.String():                      "rx-hw-gro-wire-bytes",
		Counter(3).String():                            "counter(3)",
		NAPIConfig{DeferHardIRQs: new(uint32(2)), Threaded: new(ThreadedEnabled)}.String(): "defer-hard-irqs=2 threaded=enabled",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if len(counterNames) != attrQStatsLast-attrQStatsFirst+1 || TxWake != attrQStatsLast {
		t.Errorf("%d counter names for attributes %d..%d", len(counterNames), attrQStatsFirst, attrQStatsLast)
	}
	for _, in := range []string{"busy-poll", "2"} {
		var th Threaded
		if err := th.UnmarshalText([]byte(in)); err != nil || th != ThreadedBusyPoll {
			t.Errorf("UnmarshalText(%q) = %v, %v", in, th, err)
		}
	}
	var th Threaded
	if err := th.UnmarshalText([]byte("busy")); err == nil || !strings.Contains(err.Error(), "disabled, enabled or busy-poll") {
		t.Errorf("UnmarshalText(busy) error = %v", err)
	}
}

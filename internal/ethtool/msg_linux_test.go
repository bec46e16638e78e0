package ethtool

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// encodeReply is the kernel's side of decodeReply, for tests: every field of obj, maxima included.
func encodeReply(t testing.TB, o op, obj object, extra ...netlink.Attribute) genetlink.Message {
	ae := netlink.NewAttributeEncoder()
	encodeHeader(ae, Device{Index: 3, Name: "eth0"})
	for _, f := range obj.fields() {
		if f.u32 != nil {
			ae.Uint32(f.attr, *f.u32)
		} else {
			ae.Uint8(f.attr, boolU8(*f.flag))
		}
	}
	for _, a := range extra {
		ae.Bytes(a.Type, a.Data)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return genetlink.Message{Header: genetlink.Header{Command: o.reply, Version: 1}, Data: b}
}

func TestDecodeReply(t *testing.T) {
	want := Coalesce{RXUsecs: 8, RXMaxFrames: 64, TXUsecs: 16, TXMaxFrames: 32, AdaptiveRX: true}
	// A newer kernel's attribute (TX aggregation, 0x1b) and the CQE mode flag must be skipped.
	m := encodeReply(t, opCoalesce, &want, netlink.Attribute{Type: 0x1b, Data: []byte{1, 0, 0, 0}},
		netlink.Attribute{Type: unix.ETHTOOL_A_COALESCE_USE_CQE_MODE_RX, Data: []byte{1}})
	var got Coalesce
	if err := decodeReply(opCoalesce, []genetlink.Message{m}, &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("decoded %+v, want %+v", got, want)
	}

	var ch Channels
	for _, tc := range []struct {
		msgs []genetlink.Message
		want string
	}{
		{nil, "want 1 reply message, got 0"},
		{[]genetlink.Message{m, m}, "want 1 reply message, got 2"},
		{[]genetlink.Message{m}, "reply has command 20, want 18"},
		{[]genetlink.Message{{Header: genetlink.Header{Command: opChannels.reply},
			Data: []byte{0x06, 0x00, unix.ETHTOOL_A_CHANNELS_RX_COUNT, 0x00, 0x01, 0x00, 0x00, 0x00}}}, "channels-get reply"},
		{[]genetlink.Message{{Header: genetlink.Header{Command: opChannels.reply}, Data: []byte{0xff, 0x00}}}, "channels-get reply"},
	} {
		err := decodeReply(opChannels, tc.msgs, &ch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeReply error = %v, want it to say %q", err, tc.want)
		}
	}
}

func TestEncodeSetSkipsMaximaAndUnchanged(t *testing.T) {
	cur := Channels{RX: 4, TX: 4, RXMax: 4, TXMax: 4}
	want := Channels{RX: 4, TX: 2, RXMax: 64, CombinedMax: 8}
	m, changed, err := encodeSet(opChannels, Device{Index: 9}, &cur, &want)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	attrs, err := netlink.UnmarshalAttributes(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	var types []uint16
	for _, a := range attrs {
		types = append(types, a.Type)
	}
	if diff := cmp.Diff([]uint16{headerAttr | netlink.Nested, unix.ETHTOOL_A_CHANNELS_TX_COUNT}, types); diff != "" {
		t.Errorf("attributes sent (-want +got):\n%s", diff)
	}
	if m.Header.Command != unix.ETHTOOL_MSG_CHANNELS_SET || m.Header.Version != 1 {
		t.Errorf("header %+v", m.Header)
	}
	if _, changed, _ := encodeSet(opChannels, Device{Index: 9}, &cur, &cur); changed {
		t.Error("an unchanged set must not need a request")
	}
}

// FuzzDecodeReply feeds arbitrary attribute bytes to each object's decoder: it must not panic, and whatever it
// decodes must survive a round trip through the kernel's encoding.
func FuzzDecodeReply(f *testing.F) {
	f.Add(uint8(0), []byte{0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
		0x08, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x08, 0x00, 0x06, 0x00, 0x04, 0x00, 0x00, 0x00})
	f.Add(uint8(1), []byte{0x08, 0x00, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00})
	f.Add(uint8(2), []byte{0x05, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00, 0x00})
	f.Add(uint8(2), []byte{0x06, 0x00, 0x02, 0x00, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ops := []op{opChannels, opRings, opCoalesce}
		o := ops[int(which)%len(ops)]
		objs := []func() object{func() object { return &Channels{} }, func() object { return &Rings{} },
			func() object { return &Coalesce{} }}
		obj := objs[int(which)%len(ops)]()
		m := genetlink.Message{Header: genetlink.Header{Command: o.reply}, Data: data}
		if err := decodeReply(o, []genetlink.Message{m}, obj); err != nil {
			return
		}
		again := objs[int(which)%len(ops)]()
		if err := decodeReply(o, []genetlink.Message{encodeReply(t, o, obj)}, again); err != nil {
			t.Fatalf("re-decoding %+v: %v", obj, err)
		}
		if !cmp.Equal(obj, again) {
			t.Fatalf("round trip changed %+v into %+v", obj, again)
		}
	})
}

package xdp

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string // empty: valid
	}{
		{Spec{Port: 54321}, ""},
		{Spec{Port: 1, Queues: MaxQueues}, ""},
		{Spec{}, "port 0 cannot be steered"},
		{Spec{Port: 9, Queues: -1}, "use 1 to 4096"},
		{Spec{Port: 9, Queues: MaxQueues + 1}, "use 1 to 4096"},
	} {
		err := tc.spec.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.spec, err, tc.want)
		}
	}
	if (Spec{Port: 1}).queues() != DefaultQueues || (Spec{Port: 1, Queues: 3}).queues() != 3 {
		t.Error("queues() ignores the default or the setting")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "native": ModeNative, "drv": ModeNative,
		"generic": ModeGeneric, "skb": ModeGeneric} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("hw"); err == nil || !strings.Contains(err.Error(), "use auto, native or generic") {
		t.Errorf("ParseMode(hw) = %v", err)
	}
	var m Mode
	if err := m.UnmarshalText([]byte("generic")); err != nil || m != ModeGeneric {
		t.Errorf("UnmarshalText(generic) = %v, %v", m, err)
	}
	if b, _ := ModeNative.MarshalText(); string(b) != "native" || Mode(9).String() != "mode(9)" {
		t.Errorf("Mode text: %s %s", b, Mode(9))
	}
}

// linkMessage encodes an RTM_NEWLINK body with the given IFLA_XDP attributes.
func linkMessage(t testing.TB, xdpAttrs func(*netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.String(3, "veth-b") // IFLA_IFNAME
	if xdpAttrs != nil {
		ae.Nested(iflaXDP, func(nae *netlink.AttributeEncoder) error { xdpAttrs(nae); return nil })
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(getLinkRequest(2), b...)
}

func TestParseLinkXDP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs func(*netlink.AttributeEncoder)
		want  Attachment
		ok    bool
	}{
		{"no attribute", nil, Attachment{}, false},
		{"none", func(e *netlink.AttributeEncoder) { e.Uint8(xdpAttached, attachedNone) }, Attachment{}, false},
		{"native", func(e *netlink.AttributeEncoder) {
			e.Uint8(xdpAttached, attachedDrv)
			e.Uint32(xdpProgID, 77)
			e.Uint32(xdpDrvProgID, 77)
		}, Attachment{ProgramID: 77, Mode: ModeNative}, true},
		{"generic", func(e *netlink.AttributeEncoder) {
			e.Uint8(xdpAttached, attachedSkb)
			e.Uint32(xdpProgID, 78)
		}, Attachment{ProgramID: 78, Mode: ModeGeneric}, true},
		{"offload", func(e *netlink.AttributeEncoder) {
			e.Uint8(xdpAttached, attachedHw)
			e.Uint32(xdpProgID, 79)
		}, Attachment{ProgramID: 79, Mode: ModeOffload}, true},
		{"multi prefers native", func(e *netlink.AttributeEncoder) {
			e.Uint8(xdpAttached, attachedMulti)
			e.Uint32(xdpSkbProgID, 5)
			e.Uint32(xdpDrvProgID, 6)
		}, Attachment{ProgramID: 6, Mode: ModeNative}, true},
		{"multi generic only", func(e *netlink.AttributeEncoder) {
			e.Uint8(xdpAttached, attachedMulti)
			e.Uint32(xdpSkbProgID, 5)
		}, Attachment{ProgramID: 5, Mode: ModeGeneric}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseLink(linkMessage(t, tc.attrs))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := l.XDP.attachment()
			if got != tc.want || ok != tc.ok {
				t.Fatalf("attachment = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, err := parseLink(make([]byte, 15)); err == nil {
		t.Error("parseLink accepted a body shorter than ifinfomsg")
	}
	bad := linkMessage(t, func(e *netlink.AttributeEncoder) { e.Uint8(xdpAttached, 9) })
	if _, err := parseLink(bad); err == nil {
		t.Error("parseLink accepted XDP_ATTACHED 9")
	}
}

func TestLinkReady(t *testing.T) {
	msg := func(flags uint32, qdisc string) []byte {
		b := linkMessage(t, nil)
		binary.NativeEndian.PutUint32(b[8:], flags)
		if qdisc != "" {
			ae := netlink.NewAttributeEncoder()
			ae.String(iflaQdisc, qdisc)
			q, _ := ae.Encode()
			b = append(b, q...)
		}
		return b
	}
	for _, tc := range []struct {
		flags uint32
		qdisc string
		ready bool
	}{
		{iffUp | iffRunning, "noqueue", true},
		{iffUp | iffRunning, "mq", true},
		{iffUp | iffRunning, "noop", false}, // carrier is up but the link watcher has not attached the discipline
		{iffUp, "noqueue", false},           // no carrier
		{iffRunning, "noqueue", false},      // administratively down
	} {
		l, err := parseLink(msg(tc.flags, tc.qdisc))
		if err != nil {
			t.Fatal(err)
		}
		if l.Ifindex != 2 || l.Flags != tc.flags || l.Qdisc != tc.qdisc || l.ready() != tc.ready {
			t.Errorf("flags %#x qdisc %q: parsed %+v, ready %v; want ready %v", tc.flags, tc.qdisc, l, l.ready(), tc.ready)
		}
	}
}

func TestAttachedErrorSaysHowToRemove(t *testing.T) {
	for _, tc := range []struct {
		a    Attachment
		want string
	}{
		{Attachment{ProgramID: 12, Name: "xdp_prog", Mode: ModeNative, LinkID: 3},
			"veth-b already has program xdp_prog (id 12) in native mode held by bpf_link 3; stop the process that holds bpf_link 3, or run `bpftool link detach id 3`"},
		{Attachment{ProgramID: 12, Mode: ModeGeneric},
			"veth-b already has program (unnamed) (id 12) in generic mode attached through netlink; remove it with `ip link set dev veth-b xdpgeneric off`"},
		{Attachment{ProgramID: 12, Name: "x", Mode: ModeNative},
			"remove it with `ip link set dev veth-b xdp off`"},
	} {
		err := error(&AttachedError{Device: "veth-b", Existing: tc.a, Err: unix.EBUSY})
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q lacks %q", err, tc.want)
		}
		if !errors.Is(err, os.ErrExist) || !errors.Is(err, unix.EBUSY) {
			t.Errorf("error %v matches neither os.ErrExist nor the errno", err)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add(linkMessage(f, func(e *netlink.AttributeEncoder) {
		e.Uint8(xdpAttached, attachedMulti)
		e.Uint32(xdpSkbProgID, 5)
		e.Uint32(xdpDrvProgID, 6)
	}))
	f.Add(linkMessage(f, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLink(b)
		if err != nil {
			return
		}
		if len(b) < ifinfomsgLen || l.Ifindex != int(int32(binary.NativeEndian.Uint32(b[4:]))) {
			t.Fatalf("parseLink of %x: ifindex %d does not come from the header", b, l.Ifindex)
		}
		x := l.XDP
		a, ok := x.attachment()
		if ok && (a.ProgramID == 0 || a.Mode == ModeAuto) {
			t.Fatalf("attachment %+v from %+v: an attached program needs an id and a mode", a, x)
		}
		if x.Attached == attachedNone && ok {
			t.Fatalf("XDP_ATTACHED_NONE reported as attached: %+v", a)
		}
	})
}

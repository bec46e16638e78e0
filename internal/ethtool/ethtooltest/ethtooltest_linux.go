package ethtooltest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/ethtool"
)

// FamilyID is the id the fake gives the ethtool family (the one observed on the project's 6.18 machines).
const FamilyID = 21

// Device is a fake NIC as the ethtool family sees it. A nil object means the driver lacks that operation, and
// the fake answers EOPNOTSUPP as the kernel does.
type Device struct {
	Index    int
	Name     string
	Driver   string
	Channels *ethtool.Channels
	Rings    *ethtool.Rings
	Coalesce *ethtool.Coalesce
	// CoalesceSupported lists the ETHTOOL_A_COALESCE_* attributes the driver supports
	// (ethtool_ops.supported_coalesce_params): get replies leave out the others when they are 0, and a set
	// request naming one is refused.
	CoalesceSupported []uint16
}

// Veth is a veth end with queues RX and TX queues in use out of max: channels only, no rings, no coalescing.
func Veth(index int, name string, queues, max uint32) Device {
	return Device{Index: index, Name: name, Driver: "veth",
		Channels: &ethtool.Channels{RX: queues, TX: queues, RXMax: max, TXMax: max}}
}

// VirtioNet is a virtio_net NIC with pairs combined channels out of maxPairs, 256-entry rings and the
// coalescing parameters virtio_net supports (usecs, max frames, adaptive RX), in the state a 6.18 guest's eth0
// reports: no delay, one frame per interrupt.
func VirtioNet(index int, name string, pairs, maxPairs uint32) Device {
	return Device{Index: index, Name: name, Driver: "virtio_net",
		Channels: &ethtool.Channels{Combined: pairs, CombinedMax: maxPairs},
		Rings:    &ethtool.Rings{RX: 256, TX: 256, RXMax: 256, TXMax: 256},
		Coalesce: &ethtool.Coalesce{RXMaxFrames: 1, TXMaxFrames: 1},
		CoalesceSupported: []uint16{unix.ETHTOOL_A_COALESCE_RX_USECS, unix.ETHTOOL_A_COALESCE_RX_MAX_FRAMES,
			unix.ETHTOOL_A_COALESCE_TX_USECS, unix.ETHTOOL_A_COALESCE_TX_MAX_FRAMES,
			unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX},
	}
}

// Request is one request the fake received.
type Request struct {
	Command uint8
	Flags   netlink.HeaderFlags
	Attrs   []byte // the generic netlink payload after the 4-byte genetlink header, exactly as sent
}

// Family is the fake ethtool family: it serves the family lookup, keeps device state across requests, and
// records every ethtool request.
type Family struct {
	// Absent makes the family lookup fail with ENOENT, as on a kernel built without CONFIG_ETHTOOL_NETLINK.
	Absent bool

	mu       sync.Mutex
	devices  []*Device
	requests []Request
}

// New returns a family serving devs (copied; see Device for the state after sets).
func New(devs ...Device) *Family {
	f := &Family{}
	for _, d := range devs {
		f.devices = append(f.devices, &d)
	}
	return f
}

// Conn returns a connection whose requests this family answers.
func (f *Family) Conn() *genetlink.Conn { return genetlink.NewConn(nltest.Dial(f.serve)) }

// Client returns an ethtool client on Conn that names drivers with Driver, closed when tb ends.
func (f *Family) Client(tb testing.TB) *ethtool.Client {
	tb.Helper()
	c, err := ethtool.NewClient(f.Conn(), f.Driver)
	if err != nil {
		tb.Fatalf("ethtooltest: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Driver is an ethtool.DriverFunc over the fake's devices.
func (f *Family) Driver(d ethtool.Device) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dev := f.find(uint32(d.Index), d.Name); dev != nil {
		return dev.Driver, nil
	}
	return "", unix.ENODEV
}

// Requests returns the ethtool requests received so far (family lookups excluded).
func (f *Family) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// Device returns a copy of the named device's current state.
func (f *Family) Device(name string) Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.find(0, name)
	if d == nil {
		panic("ethtooltest: no device " + name)
	}
	c := *d
	if d.Channels != nil {
		ch := *d.Channels
		c.Channels = &ch
	}
	if d.Rings != nil {
		r := *d.Rings
		c.Rings = &r
	}
	if d.Coalesce != nil {
		co := *d.Coalesce
		c.Coalesce = &co
	}
	return c
}

func (f *Family) find(index uint32, name string) *Device {
	for _, d := range f.devices {
		if (index == 0 || uint32(d.Index) == index) && (name == "" || d.Name == name) && (index != 0 || name != "") {
			return d
		}
	}
	return nil
}

// kernelError is an errno with the extended-ack sentence the kernel would attach.
type kernelError struct {
	errno unix.Errno
	msg   string
}

func (f *Family) serve(reqs []netlink.Message) ([]netlink.Message, error) {
	if len(reqs) != 1 {
		return nil, fmt.Errorf("ethtooltest: want one request per send, got %d", len(reqs))
	}
	req := reqs[0]
	var gm genetlink.Message
	if err := gm.UnmarshalBinary(req.Data); err != nil {
		return nil, err
	}
	if req.Header.Type == unix.GENL_ID_CTRL {
		if f.Absent {
			return errorReply(req, kernelError{errno: unix.ENOENT})
		}
		lookup := genltest.ServeFamily(genetlink.Family{ID: FamilyID, Version: unix.ETHTOOL_GENL_VERSION,
			Name: unix.ETHTOOL_GENL_NAME}, func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			return nil, fmt.Errorf("ethtooltest: unexpected generic netlink control request")
		})
		replies, err := lookup(gm, req)
		if err != nil {
			return nil, err
		}
		return pack(req, unix.GENL_ID_CTRL, replies)
	}
	if req.Header.Type != FamilyID {
		return errorReply(req, kernelError{errno: unix.ENOENT})
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Command: gm.Header.Command, Flags: req.Header.Flags, Attrs: slices.Clone(gm.Data)})
	isSet := gm.Header.Command == unix.ETHTOOL_MSG_CHANNELS_SET || gm.Header.Command == unix.ETHTOOL_MSG_RINGS_SET ||
		gm.Header.Command == unix.ETHTOOL_MSG_COALESCE_SET
	if isSet && req.Header.Flags&netlink.Acknowledge == 0 {
		return nil, fmt.Errorf("ethtooltest: set request without NLM_F_ACK: the kernel would send no reply and the client would wait forever")
	}
	reply, kerr := f.handle(gm)
	if kerr != nil {
		return errorReply(req, *kerr)
	}
	if isSet {
		return errorReply(req, kernelError{}) // errno 0: the acknowledgement
	}
	return pack(req, FamilyID, []genetlink.Message{reply})
}

// handle applies one ethtool request to the device state, as net/ethtool/{channels,rings,coalesce}.c do.
func (f *Family) handle(gm genetlink.Message) (genetlink.Message, *kernelError) {
	attrs, kerr := parseAttrs(gm.Data)
	if kerr != nil {
		return genetlink.Message{}, kerr
	}
	dev, kerr := f.device(attrs[1])
	if kerr != nil {
		return genetlink.Message{}, kerr
	}
	notSupported := &kernelError{errno: unix.EOPNOTSUPP}
	ae := netlink.NewAttributeEncoder()
	reply := func(cmd uint8) (genetlink.Message, *kernelError) {
		b, err := ae.Encode()
		if err != nil {
			return genetlink.Message{}, &kernelError{errno: unix.EMSGSIZE}
		}
		return genetlink.Message{Header: genetlink.Header{Command: cmd, Version: unix.ETHTOOL_GENL_VERSION}, Data: b}, nil
	}
	switch gm.Header.Command {
	case unix.ETHTOOL_MSG_CHANNELS_GET:
		if dev.Channels == nil {
			return genetlink.Message{}, notSupported
		}
		ch := dev.Channels
		encodeHeader(ae, dev)
		putPair(ae, ch.RXMax, unix.ETHTOOL_A_CHANNELS_RX_MAX, unix.ETHTOOL_A_CHANNELS_RX_COUNT, ch.RX)
		putPair(ae, ch.TXMax, unix.ETHTOOL_A_CHANNELS_TX_MAX, unix.ETHTOOL_A_CHANNELS_TX_COUNT, ch.TX)
		putPair(ae, ch.OtherMax, unix.ETHTOOL_A_CHANNELS_OTHER_MAX, unix.ETHTOOL_A_CHANNELS_OTHER_COUNT, ch.Other)
		putPair(ae, ch.CombinedMax, unix.ETHTOOL_A_CHANNELS_COMBINED_MAX, unix.ETHTOOL_A_CHANNELS_COMBINED_COUNT, ch.Combined)
		return reply(unix.ETHTOOL_MSG_CHANNELS_GET_REPLY)
	case unix.ETHTOOL_MSG_CHANNELS_SET:
		if dev.Channels == nil {
			return genetlink.Message{}, notSupported
		}
		return genetlink.Message{}, setChannels(dev.Channels, attrs)
	case unix.ETHTOOL_MSG_RINGS_GET:
		if dev.Rings == nil {
			return genetlink.Message{}, notSupported
		}
		r := dev.Rings
		encodeHeader(ae, dev)
		putPair(ae, r.RXMax, unix.ETHTOOL_A_RINGS_RX_MAX, unix.ETHTOOL_A_RINGS_RX, r.RX)
		putPair(ae, r.RXMiniMax, unix.ETHTOOL_A_RINGS_RX_MINI_MAX, unix.ETHTOOL_A_RINGS_RX_MINI, r.RXMini)
		putPair(ae, r.RXJumboMax, unix.ETHTOOL_A_RINGS_RX_JUMBO_MAX, unix.ETHTOOL_A_RINGS_RX_JUMBO, r.RXJumbo)
		putPair(ae, r.TXMax, unix.ETHTOOL_A_RINGS_TX_MAX, unix.ETHTOOL_A_RINGS_TX, r.TX)
		ae.Uint8(unix.ETHTOOL_A_RINGS_TX_PUSH, 0) // always present, as in the kernel: a field the client must skip
		return reply(unix.ETHTOOL_MSG_RINGS_GET_REPLY)
	case unix.ETHTOOL_MSG_RINGS_SET:
		if dev.Rings == nil {
			return genetlink.Message{}, notSupported
		}
		return genetlink.Message{}, setRings(dev.Rings, attrs)
	case unix.ETHTOOL_MSG_COALESCE_GET:
		if dev.Coalesce == nil {
			return genetlink.Message{}, notSupported
		}
		encodeHeader(ae, dev)
		for _, cf := range coalesceFields(dev.Coalesce) {
			if cf.value() != 0 || slices.Contains(dev.CoalesceSupported, cf.attr) {
				cf.put(ae)
			}
		}
		return reply(unix.ETHTOOL_MSG_COALESCE_GET_REPLY)
	case unix.ETHTOOL_MSG_COALESCE_SET:
		if dev.Coalesce == nil {
			return genetlink.Message{}, notSupported
		}
		return genetlink.Message{}, setCoalesce(dev, attrs)
	}
	return genetlink.Message{}, &kernelError{errno: unix.EOPNOTSUPP}
}

// parseAttrs splits a payload into its top-level attributes, keeping the header's raw bytes under type 1 and
// refusing a header without NLA_F_NESTED, as the kernel's strict validation does.
func parseAttrs(b []byte) (map[uint16][]byte, *kernelError) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, &kernelError{errno: unix.EINVAL, msg: "malformed attributes"}
	}
	attrs := map[uint16][]byte{}
	for ad.Next() {
		if ad.Type() == 1 && ad.TypeFlags()&netlink.Nested == 0 {
			return nil, &kernelError{errno: unix.EINVAL, msg: "NLA_F_NESTED is missing"}
		}
		attrs[ad.Type()] = ad.Bytes()
	}
	if ad.Err() != nil {
		return nil, &kernelError{errno: unix.EINVAL, msg: "malformed attributes"}
	}
	return attrs, nil
}

// device resolves the request header as ethnl_parse_header_dev_get does.
func (f *Family) device(header []byte) (*Device, *kernelError) {
	if header == nil {
		return nil, &kernelError{errno: unix.EINVAL, msg: "request header missing"}
	}
	ad, err := netlink.NewAttributeDecoder(header)
	if err != nil {
		return nil, &kernelError{errno: unix.EINVAL, msg: "malformed header"}
	}
	var index uint32
	var name string
	for ad.Next() {
		switch ad.Type() {
		case unix.ETHTOOL_A_HEADER_DEV_INDEX:
			index = ad.Uint32()
		case unix.ETHTOOL_A_HEADER_DEV_NAME:
			name = ad.String()
		}
	}
	switch {
	case ad.Err() != nil:
		return nil, &kernelError{errno: unix.EINVAL, msg: "malformed header"}
	case index == 0 && name == "":
		return nil, &kernelError{errno: unix.EINVAL, msg: "device not specified"}
	}
	d := f.find(index, name)
	switch {
	case d != nil:
		return d, nil
	case index != 0 && name != "" && f.find(index, "") != nil:
		return nil, &kernelError{errno: unix.ENODEV, msg: "ifindex and name do not match"}
	case index != 0:
		return nil, &kernelError{errno: unix.ENODEV, msg: "no device matches ifindex"}
	}
	return nil, &kernelError{errno: unix.ENODEV, msg: "no device matches name"}
}

func encodeHeader(ae *netlink.AttributeEncoder, d *Device) {
	ae.Nested(1, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(unix.ETHTOOL_A_HEADER_DEV_INDEX, uint32(d.Index))
		nae.String(unix.ETHTOOL_A_HEADER_DEV_NAME, d.Name)
		return nil
	})
}

// putPair emits a maximum and its current value only when the maximum is non-zero, as the kernel does.
func putPair(ae *netlink.AttributeEncoder, max uint32, maxAttr, curAttr uint16, cur uint32) {
	if max != 0 {
		ae.Uint32(maxAttr, max)
		ae.Uint32(curAttr, cur)
	}
}

// update sets *v from a u32 attribute if present, reporting whether it changed.
func update(attrs map[uint16][]byte, attr uint16, v *uint32) (bool, *kernelError) {
	b, ok := attrs[attr]
	if !ok {
		return false, nil
	}
	if len(b) != 4 {
		return false, &kernelError{errno: unix.ERANGE, msg: fmt.Sprintf("attribute %d has %d bytes, want 4", attr, len(b))}
	}
	n := binary.NativeEndian.Uint32(b)
	changed := n != *v
	*v = n
	return changed, nil
}

func setChannels(ch *ethtool.Channels, attrs map[uint16][]byte) *kernelError {
	next := *ch
	mod := false
	for _, u := range []struct {
		attr uint16
		v    *uint32
	}{{unix.ETHTOOL_A_CHANNELS_RX_COUNT, &next.RX}, {unix.ETHTOOL_A_CHANNELS_TX_COUNT, &next.TX},
		{unix.ETHTOOL_A_CHANNELS_OTHER_COUNT, &next.Other}, {unix.ETHTOOL_A_CHANNELS_COMBINED_COUNT, &next.Combined}} {
		changed, kerr := update(attrs, u.attr, u.v)
		if kerr != nil {
			return kerr
		}
		mod = mod || changed
	}
	if !mod {
		return nil
	}
	if next.RX > next.RXMax || next.TX > next.TXMax || next.Other > next.OtherMax || next.Combined > next.CombinedMax {
		return &kernelError{errno: unix.EINVAL, msg: "requested channel count exceeds maximum"}
	}
	if next.Combined == 0 && (next.RX == 0 || next.TX == 0) {
		return &kernelError{errno: unix.EINVAL, msg: "requested channel counts would result in no RX or TX channel being configured"}
	}
	*ch = next
	return nil
}

func setRings(r *ethtool.Rings, attrs map[uint16][]byte) *kernelError {
	next := *r
	for _, u := range []struct {
		attr uint16
		v    *uint32
	}{{unix.ETHTOOL_A_RINGS_RX, &next.RX}, {unix.ETHTOOL_A_RINGS_RX_MINI, &next.RXMini},
		{unix.ETHTOOL_A_RINGS_RX_JUMBO, &next.RXJumbo}, {unix.ETHTOOL_A_RINGS_TX, &next.TX}} {
		if _, kerr := update(attrs, u.attr, u.v); kerr != nil {
			return kerr
		}
	}
	if next.RX > next.RXMax || next.RXMini > next.RXMiniMax || next.RXJumbo > next.RXJumboMax || next.TX > next.TXMax {
		return &kernelError{errno: unix.EINVAL, msg: "requested ring size exceeds maximum"}
	}
	*r = next
	return nil
}

// coalesceField is one coalescing parameter of the fake's state.
type coalesceField struct {
	attr uint16
	u32  *uint32
	flag *bool
}

func (c coalesceField) value() uint32 {
	if c.u32 != nil {
		return *c.u32
	}
	if *c.flag {
		return 1
	}
	return 0
}

func (c coalesceField) put(ae *netlink.AttributeEncoder) {
	if c.u32 != nil {
		ae.Uint32(c.attr, *c.u32)
	} else {
		ae.Uint8(c.attr, uint8(c.value()))
	}
}

func coalesceFields(co *ethtool.Coalesce) []coalesceField {
	return []coalesceField{
		{attr: unix.ETHTOOL_A_COALESCE_RX_USECS, u32: &co.RXUsecs},
		{attr: unix.ETHTOOL_A_COALESCE_RX_MAX_FRAMES, u32: &co.RXMaxFrames},
		{attr: unix.ETHTOOL_A_COALESCE_TX_USECS, u32: &co.TXUsecs},
		{attr: unix.ETHTOOL_A_COALESCE_TX_MAX_FRAMES, u32: &co.TXMaxFrames},
		{attr: unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, flag: &co.AdaptiveRX},
		{attr: unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_TX, flag: &co.AdaptiveTX},
	}
}

func setCoalesce(d *Device, attrs map[uint16][]byte) *kernelError {
	for a := range attrs {
		if a >= unix.ETHTOOL_A_COALESCE_RX_USECS && !slices.Contains(d.CoalesceSupported, a) {
			return &kernelError{errno: unix.EINVAL, msg: "cannot modify an unsupported parameter"}
		}
	}
	next := *d.Coalesce
	for _, cf := range coalesceFields(&next) {
		b, ok := attrs[cf.attr]
		switch {
		case !ok:
		case cf.u32 != nil && len(b) == 4:
			*cf.u32 = binary.NativeEndian.Uint32(b)
		case cf.flag != nil && len(b) == 1:
			*cf.flag = b[0] != 0
		default:
			return &kernelError{errno: unix.ERANGE, msg: fmt.Sprintf("attribute %d has %d bytes", cf.attr, len(b))}
		}
	}
	*d.Coalesce = next
	return nil
}

// pack wraps generic netlink replies in netlink messages carrying the request's sequence and port id.
func pack(req netlink.Message, typ netlink.HeaderType, gms []genetlink.Message) ([]netlink.Message, error) {
	out := make([]netlink.Message, 0, len(gms))
	for _, gm := range gms {
		b, err := gm.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, netlink.Message{Header: netlink.Header{Type: typ, Sequence: req.Header.Sequence,
			PID: req.Header.PID}, Data: b})
	}
	return out, nil
}

// errorReply builds the NLMSG_ERROR message the kernel sends: the negative errno (0 for an acknowledgement), the
// request it answers, and, when there is a sentence, the extended-ack TLV with it.
func errorReply(req netlink.Message, kerr kernelError) ([]netlink.Message, error) {
	orig, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(kerr.errno)))
	data = append(data, orig...)
	var flags netlink.HeaderFlags
	if kerr.msg != "" {
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.NLMSGERR_ATTR_MSG, kerr.msg)
		tlv, err := ae.Encode()
		if err != nil {
			return nil, err
		}
		data = append(data, tlv...)
		flags |= netlink.AcknowledgeTLVs
	}
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error, Flags: flags,
		Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: data}}, nil
}

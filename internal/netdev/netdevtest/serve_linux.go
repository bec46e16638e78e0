package netdevtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/netdev"
)

// Dial returns a generic netlink connection served by the fake. The connection has no socket options:
// the fake always attaches extended-ACK messages, as the kernel does for a client that enabled them.
func (f *Family) Dial() *genetlink.Conn {
	fam := genetlink.Family{ID: FamilyID, Version: 1, Name: "netdev",
		Groups: []genetlink.MulticastGroup{{ID: 4, Name: "mgmt"}, {ID: 5, Name: "page-pool"}}}
	serve := genltest.ServeFamily(fam, f.handle)
	return genetlink.NewConn(nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) == 0 {
			return nil, io.EOF // a read without a request: no multicast traffic here
		}
		req := reqs[0]
		var greq genetlink.Message
		if err := greq.UnmarshalBinary(req.Data); err != nil {
			return nil, fmt.Errorf("netdevtest: %w", err)
		}
		if !f.kernel.Family && req.Header.Type == unix.GENL_ID_CTRL && greq.Header.Command == unix.CTRL_CMD_GETFAMILY {
			return errorReply(req, &nlError{errno: unix.ENOENT}), nil
		}
		msgs, err := serve(greq, req)
		var kerr *nlError
		switch {
		case errors.As(err, &kerr):
			return errorReply(req, kerr), nil
		case err != nil:
			return nil, err
		}
		return reply(req, msgs), nil
	}))
}

// nlError is an error the kernel would send back: an errno with an optional extended-ACK message and the
// offset of the attribute it blames.
type nlError struct {
	errno unix.Errno
	msg   string
	off   int
}

func (e *nlError) Error() string { return e.errno.Error() }

func kernelErr(errno unix.Errno, msg string, off int) error { return &nlError{errno, msg, off} }

// errorReply builds the NLMSG_ERROR the kernel sends: errno, the request echoed, then extended-ACK TLVs.
func errorReply(req netlink.Message, e *nlError) []netlink.Message {
	echo, _ := req.MarshalBinary()
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(e.errno)))
	data = append(data, echo...)
	flags := netlink.HeaderFlags(0)
	if e.msg != "" || e.off != 0 {
		flags |= netlink.AcknowledgeTLVs
		ae := netlink.NewAttributeEncoder()
		if e.msg != "" {
			ae.Bytes(unix.NLMSGERR_ATTR_MSG, append([]byte(e.msg), 0))
		}
		if e.off != 0 {
			ae.Uint32(unix.NLMSGERR_ATTR_OFFS, uint32(e.off))
		}
		tlvs, _ := ae.Encode()
		data = append(data, tlvs...)
	}
	return []netlink.Message{{
		Header: netlink.Header{Type: netlink.Error, Flags: flags, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   data,
	}}
}

// reply frames generic netlink replies: a dump as a multi-part message ending in NLMSG_DONE, a "do" followed by
// an ACK when the request asked for one.
func reply(req netlink.Message, msgs []genetlink.Message) []netlink.Message {
	hdr := netlink.Header{Sequence: req.Header.Sequence, PID: req.Header.PID, Type: req.Header.Type}
	dump := req.Header.Flags&netlink.Dump == netlink.Dump
	if dump {
		hdr.Flags = netlink.Multi
	}
	var out []netlink.Message
	for _, m := range msgs {
		b, _ := m.MarshalBinary()
		out = append(out, netlink.Message{Header: hdr, Data: b})
	}
	switch {
	case dump:
		out = append(out, netlink.Message{
			Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: hdr.Sequence, PID: hdr.PID},
			Data:   make([]byte, 4),
		})
	case req.Header.Flags&netlink.Acknowledge != 0:
		echo, _ := req.MarshalBinary()
		out = append(out, netlink.Message{
			Header: netlink.Header{Type: netlink.Error, Sequence: hdr.Sequence, PID: hdr.PID},
			Data:   append(make([]byte, 4), echo...),
		})
	}
	return out
}

// handle serves one request that is not a family lookup.
func (f *Family) handle(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Family: uint16(nreq.Header.Type), Command: greq.Header.Command,
		Flags: nreq.Header.Flags, Attrs: append([]byte(nil), greq.Data...)})

	attrs, err := splitAttrs(greq.Data)
	if err != nil {
		return nil, err
	}
	if nreq.Header.Type == unix.GENL_ID_CTRL {
		if greq.Header.Command != unix.CTRL_CMD_GETPOLICY {
			return nil, fmt.Errorf("netdevtest: controller command %d is not faked", greq.Header.Command)
		}
		return f.getPolicy(attrs)
	}
	if nreq.Header.Type != FamilyID {
		return nil, kernelErr(unix.ENOENT, "", 0)
	}

	// genl_family_rcv_msg: header check, command lookup, permission, handler presence, then policy validation.
	dump := nreq.Header.Flags&netlink.Dump == netlink.Dump
	if len(nreq.Data) < 4 || nreq.Data[2]|nreq.Data[3] != 0 || nreq.Header.Flags&^(netlink.Request|netlink.Acknowledge|netlink.Echo|netlink.Dump) != 0 ||
		(nreq.Header.Flags&netlink.Dump != 0 && !dump) {
		return nil, kernelErr(unix.EINVAL, "", 0)
	}
	o, ok := f.kernel.ops()[greq.Header.Command]
	if !ok {
		return nil, kernelErr(unix.EOPNOTSUPP, "", 0)
	}
	if o.admin && f.denyAdmn {
		return nil, kernelErr(unix.EPERM, "", 0)
	}
	pol := o.do
	if dump {
		pol = o.dump
	}
	if pol == nil {
		return nil, kernelErr(unix.EOPNOTSUPP, "", 0)
	}
	if err := pol.validate(attrs); err != nil {
		return nil, err
	}
	if !dump && o.admin && nreq.Header.Flags&netlink.Acknowledge == 0 {
		return nil, errors.New("netdevtest: a set without NLM_F_ACK gets no reply from the kernel: " +
			"the caller would block forever")
	}

	switch cmd := greq.Header.Command; {
	case cmd == cmdDevGet && dump:
		return f.dumpDevices(), nil
	case cmd == cmdDevGet:
		return f.getDevice(attrs)
	case cmd == cmdQueueGet && dump:
		return f.dumpQueues(attrs)
	case cmd == cmdQueueGet:
		return f.getQueue(attrs)
	case cmd == cmdNAPIGet && dump:
		return f.dumpNAPIs(attrs)
	case cmd == cmdNAPIGet:
		return f.getNAPI(attrs)
	case cmd == cmdQStatsGet:
		return f.dumpQStats(attrs)
	case cmd == cmdNAPISet:
		return nil, f.setNAPI(attrs)
	}
	return nil, kernelErr(unix.EOPNOTSUPP, "", 0)
}

func (f *Family) getPolicy(attrs []attr) ([]genetlink.Message, error) {
	fam, hasFam := find(attrs, unix.CTRL_ATTR_FAMILY_ID)
	opAttr, hasOp := find(attrs, unix.CTRL_ATTR_OP)
	if !hasFam || !hasOp || len(fam.data) != 2 || len(opAttr.data) != 4 {
		return nil, errors.New("netdevtest: GETPOLICY is faked for one operation of the netdev family only")
	}
	if binary.NativeEndian.Uint16(fam.data) != FamilyID || !f.kernel.Family {
		return nil, kernelErr(unix.ENOENT, "", 0)
	}
	cmd := binary.NativeEndian.Uint32(opAttr.data)
	if cmd > math.MaxUint8 {
		return nil, kernelErr(unix.ENOENT, "", 0)
	}
	o, ok := f.kernel.ops()[uint8(cmd)]
	if !ok {
		return nil, kernelErr(unix.ENOENT, "", 0)
	}
	// Policies are numbered in order of appearance: the do policy (if any) first, then the dump policy.
	// A dump-only operation is named 0: ctrl_dumppolicy_put_op takes the command from the absent do handler.
	opType := uint16(cmd)
	if o.do == nil {
		opType = 0
	}
	type indexed struct {
		kind, idx uint16
		pol       *policy
	}
	var pols []indexed
	add := func(kind uint16, p *policy) {
		if p != nil && len(p.rules) > 0 {
			pols = append(pols, indexed{kind, uint16(len(pols)), p})
		}
	}
	add(unix.CTRL_ATTR_POLICY_DO, o.do)
	add(unix.CTRL_ATTR_POLICY_DUMP, o.dump)
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(unix.CTRL_ATTR_FAMILY_ID, FamilyID)
	ae.Nested(unix.CTRL_ATTR_OP_POLICY, func(ops *netlink.AttributeEncoder) error {
		ops.Nested(opType, func(kinds *netlink.AttributeEncoder) error {
			for _, p := range pols {
				kinds.Uint32(p.kind, uint32(p.idx))
			}
			return nil
		})
		return nil
	})
	head, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	bodies := [][]byte{head}
	for _, p := range pols {
		bodies = append(bodies, p.pol.encode(FamilyID, p.idx)...)
	}
	msgs := make([]genetlink.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = genetlink.Message{Header: genetlink.Header{Command: unix.CTRL_CMD_GETPOLICY, Version: 2}, Data: b}
	}
	return msgs, nil
}

func (f *Family) dumpDevices() []genetlink.Message {
	var msgs []genetlink.Message
	for _, d := range f.sortedDevices() {
		msgs = append(msgs, f.msg(cmdDevGet, encodeDevice(d)))
	}
	return msgs
}

func (f *Family) getDevice(attrs []attr) ([]genetlink.Message, error) {
	ifindex, err := required(attrs, 1)
	if err != nil {
		return nil, err
	}
	d, ok := f.devices[ifindex]
	if !ok {
		return nil, kernelErr(unix.ENODEV, "", 0)
	}
	return []genetlink.Message{f.msg(cmdDevGet, encodeDevice(d))}, nil
}

// ifindexFilter returns the ifindex a dump is filtered on (0: none), ENODEV for an unknown device. Only
// qstats-get blames the attribute in its extended ACK; queue-get and napi-get do not (measured on 6.18).
func (f *Family) ifindexFilter(attrs []attr, typ uint16, blame bool) (uint32, error) {
	a, ok := find(attrs, typ)
	if !ok {
		return 0, nil
	}
	ifindex := binary.NativeEndian.Uint32(a.data)
	if _, ok := f.devices[ifindex]; !ok {
		off := 0
		if blame {
			off = a.off
		}
		return 0, kernelErr(unix.ENODEV, "", off)
	}
	return ifindex, nil
}

func (f *Family) dumpQueues(attrs []attr) ([]genetlink.Message, error) {
	ifindex, err := f.ifindexFilter(attrs, 2, false)
	if err != nil {
		return nil, err
	}
	var msgs []genetlink.Message
	for _, q := range f.queues {
		if ifindex == 0 || q.Ifindex == ifindex {
			msgs = append(msgs, f.msg(cmdQueueGet, encodeQueue(q)))
		}
	}
	return msgs, nil
}

func (f *Family) getQueue(attrs []attr) ([]genetlink.Message, error) {
	var v [3]uint32
	for i, typ := range []uint16{1, 2, 3} {
		var err error
		if v[i], err = required(attrs, typ); err != nil {
			return nil, err
		}
	}
	if _, ok := f.devices[v[1]]; !ok {
		return nil, kernelErr(unix.ENODEV, "", 0)
	}
	for _, q := range f.queues {
		if q.ID == v[0] && q.Ifindex == v[1] && uint32(q.Type) == v[2] {
			return []genetlink.Message{f.msg(cmdQueueGet, encodeQueue(q))}, nil
		}
	}
	return nil, kernelErr(unix.EINVAL, "", 0) // netdev_nl_queue_validate: index beyond the queue count
}

func (f *Family) dumpNAPIs(attrs []attr) ([]genetlink.Message, error) {
	ifindex, err := f.ifindexFilter(attrs, 1, false)
	if err != nil {
		return nil, err
	}
	var msgs []genetlink.Message
	for _, n := range f.napis {
		if ifindex == 0 || n.Ifindex == ifindex {
			msgs = append(msgs, f.msg(cmdNAPIGet, f.encodeNAPI(n)))
		}
	}
	return msgs, nil
}

func (f *Family) getNAPI(attrs []attr) ([]genetlink.Message, error) {
	id, err := required(attrs, 2)
	if err != nil {
		return nil, err
	}
	n := f.napi(id)
	if n == nil {
		a, _ := find(attrs, 2)
		return nil, kernelErr(unix.ENOENT, "", a.off)
	}
	return []genetlink.Message{f.msg(cmdNAPIGet, f.encodeNAPI(*n))}, nil
}

func (f *Family) setNAPI(attrs []attr) error {
	id, err := required(attrs, 2)
	if err != nil {
		return err
	}
	n := f.napi(id)
	if n == nil {
		a, _ := find(attrs, 2)
		return kernelErr(unix.ENOENT, "", a.off)
	}
	for _, a := range attrs { // validated: every value is in range
		v := uintValue(a.data)
		switch a.typ {
		case 5:
			n.DeferHardIRQs = uint32(v)
		case 6:
			n.GROFlushTimeout = durationNS(v)
		case 7:
			n.IRQSuspendTimeout = durationNS(v)
		case 8:
			f.setThreaded(n, netdev.Threaded(v))
		}
	}
	return nil
}

func (f *Family) dumpQStats(attrs []attr) ([]genetlink.Message, error) {
	ifindex, err := f.ifindexFilter(attrs, 1, true)
	if err != nil {
		return nil, err
	}
	scope := netdev.ScopeDevice
	if a, ok := find(attrs, 4); ok {
		scope = netdev.Scope(uintValue(a.data))
	}
	var msgs []genetlink.Message
	for _, q := range f.qstats {
		if (ifindex == 0 || q.Ifindex == ifindex) && q.Scope == scope {
			msgs = append(msgs, f.msg(cmdQStatsGet, encodeQStats(q)))
		}
	}
	return msgs, nil
}

func (f *Family) msg(cmd uint8, data []byte) genetlink.Message {
	return genetlink.Message{Header: genetlink.Header{Command: cmd, Version: 1}, Data: data}
}

// splitAttrs walks the top-level attributes of a request, noting each one's offset from the start of the
// netlink message, which is what an extended ACK reports.
func splitAttrs(b []byte) ([]attr, error) {
	const base = 16 + 4 // nlmsghdr + genlmsghdr
	var out []attr
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, kernelErr(unix.EINVAL, "", 0)
		}
		n := int(binary.NativeEndian.Uint16(b[off:]))
		if n < 4 || off+n > len(b) {
			return nil, kernelErr(unix.EINVAL, "", 0)
		}
		typ := binary.NativeEndian.Uint16(b[off+2:]) &^ (netlink.Nested | netlink.NetByteOrder)
		out = append(out, attr{typ: typ, off: base + off, data: b[off+4 : off+n]})
		off += (n + 3) &^ 3
	}
	return out, nil
}

func find(attrs []attr, typ uint16) (attr, bool) {
	for _, a := range attrs {
		if a.typ == typ {
			return a, true
		}
	}
	return attr{}, false
}

// required returns a validated u32 attribute or the kernel's EINVAL for a missing one.
func required(attrs []attr, typ uint16) (uint32, error) {
	a, ok := find(attrs, typ)
	if !ok {
		return 0, kernelErr(unix.EINVAL, "", 0)
	}
	return binary.NativeEndian.Uint32(a.data), nil
}

func uintValue(b []byte) uint64 {
	if len(b) == 8 {
		return binary.NativeEndian.Uint64(b)
	}
	return uint64(binary.NativeEndian.Uint32(b))
}

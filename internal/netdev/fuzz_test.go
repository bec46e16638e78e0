package netdev

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
)

// The fuzz targets feed arbitrary reply payloads to the parsers. Beyond "never panic", each checks the parser
// against a plain reading of the same bytes: a known attribute with a valid
// width must show up in the result with its value (the last one wins), an invalid width must fail the parse,
// and unknown attributes must not matter. Seeds in testdata/fuzz include the captured 6.18 replies and
// 4- and 8-byte NLA_UINT values.

// width is how a known attribute must be sized.
type width int

const (
	w32   width = iota // exactly 4 bytes
	w64                // exactly 8 bytes
	wUint              // NLA_UINT: 4 or 8 bytes
	wDur               // NLA_UINT nanoseconds, at most math.MaxInt64
	wNest              // any length, presence only
)

// lastValues reads the known attributes of data the simple way: ok is false when the parser must fail. The TLV
// framing is netlink's own decoder (which yields a zero-length attribute with empty data, as the parser sees it);
// what is checked is the mapping of types and widths onto values.
func lastValues(data []byte, known map[uint16]width) (vals map[uint16]uint64, ok bool) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, false
	}
	vals = map[uint16]uint64{}
	for ad.Next() {
		b := ad.Bytes()
		w, isKnown := known[ad.Type()]
		switch {
		case !isKnown:
		case w == wNest:
			vals[ad.Type()] = 1
		case len(b) == 4 && (w == w32 || w == wUint || w == wDur):
			vals[ad.Type()] = uint64(binary.NativeEndian.Uint32(b))
		case len(b) == 8 && (w == w64 || w == wUint):
			vals[ad.Type()] = binary.NativeEndian.Uint64(b)
		case len(b) == 8 && w == wDur && binary.NativeEndian.Uint64(b) <= math.MaxInt64:
			vals[ad.Type()] = binary.NativeEndian.Uint64(b)
		default:
			return nil, false
		}
	}
	return vals, ad.Err() == nil
}

func seedCaptured(f *testing.F, prefix string) {
	r := captured(f)
	for name, b := range r {
		if len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			f.Add(b)
		}
	}
}

func FuzzParseNAPI(f *testing.F) {
	seedCaptured(f, "napi-get")
	known := map[uint16]width{attrNAPIIfindex: w32, attrNAPIID: w32, attrNAPIIRQ: w32, attrNAPIPID: w32,
		attrNAPIDeferHardIRQs: w32, attrNAPIGROFlushTimeout: wDur, attrNAPIIRQSuspendTimeout: wDur,
		attrNAPIThreaded: w32}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseNAPIs(msgs(data))
		want, ok := lastValues(data, known)
		if ok != (err == nil) {
			t.Fatalf("parse error %v, but the attributes read %v (valid %v)", err, want, ok)
		}
		if err != nil {
			return
		}
		n := got[0]
		_, hasIRQ := want[attrNAPIIRQ]
		_, hasPID := want[attrNAPIPID]
		_, hasThreaded := want[attrNAPIThreaded]
		threaded := Threaded(want[attrNAPIThreaded])
		if !hasThreaded && hasPID {
			threaded = ThreadedEnabled
		}
		exp := NAPI{
			ID: uint32(want[attrNAPIID]), Ifindex: uint32(want[attrNAPIIfindex]),
			IRQ: uint32(want[attrNAPIIRQ]), HasIRQ: hasIRQ, PID: uint32(want[attrNAPIPID]), HasPID: hasPID,
			DeferHardIRQs:     uint32(want[attrNAPIDeferHardIRQs]),
			GROFlushTimeout:   time.Duration(want[attrNAPIGROFlushTimeout]),
			IRQSuspendTimeout: time.Duration(want[attrNAPIIRQSuspendTimeout]),
			Threaded:          threaded,
		}
		if n != exp {
			t.Fatalf("parsed %+v, want %+v", n, exp)
		}
	})
}

func FuzzParseQueue(f *testing.F) {
	seedCaptured(f, "queue-get")
	known := map[uint16]width{attrQueueID: w32, attrQueueIfindex: w32, attrQueueType: w32, attrQueueNAPIID: w32,
		attrQueueDMABuf: w32, attrQueueIOUring: wNest, attrQueueXSK: wNest}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseQueues(msgs(data))
		want, ok := lastValues(data, known)
		if ok != (err == nil) {
			t.Fatalf("parse error %v, but the attributes read %v (valid %v)", err, want, ok)
		}
		if err != nil {
			return
		}
		exp := Queue{ID: uint32(want[attrQueueID]), Ifindex: uint32(want[attrQueueIfindex]),
			Type: QueueType(want[attrQueueType]), NAPIID: uint32(want[attrQueueNAPIID]),
			DMABuf: uint32(want[attrQueueDMABuf]), IOUring: want[attrQueueIOUring] == 1, XSK: want[attrQueueXSK] == 1}
		if got[0] != exp {
			t.Fatalf("parsed %+v, want %+v", got[0], exp)
		}
	})
}

func FuzzParseDev(f *testing.F) {
	seedCaptured(f, "dev-get")
	known := map[uint16]width{attrDevIfindex: w32, attrDevXDPFeatures: w64, attrDevXDPZCMaxSegs: w32,
		attrDevXDPRXMetadata: w64, attrDevXSKFeatures: w64}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseDevices(msgs(data))
		want, ok := lastValues(data, known)
		if ok != (err == nil) {
			t.Fatalf("parse error %v, but the attributes read %v (valid %v)", err, want, ok)
		}
		if err != nil {
			return
		}
		exp := Device{Ifindex: uint32(want[attrDevIfindex]), XDPFeatures: XDPFeatures(want[attrDevXDPFeatures]),
			XDPZCMaxSegs: uint32(want[attrDevXDPZCMaxSegs]), XDPRXMetadata: XDPRXMetadata(want[attrDevXDPRXMetadata]),
			XSKFeatures: XSKFeatures(want[attrDevXSKFeatures])}
		if got[0] != exp {
			t.Fatalf("parsed %+v, want %+v", got[0], exp)
		}
	})
}

func FuzzParseQStats(f *testing.F) {
	seedCaptured(f, "qstats-get")
	known := map[uint16]width{attrQStatsIfindex: w32, attrQStatsQueueType: w32, attrQStatsQueueID: w32}
	for c := attrQStatsFirst; c <= attrQStatsLast; c++ {
		known[uint16(c)] = wUint
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseQStats(msgs(data))
		want, ok := lastValues(data, known)
		if ok != (err == nil) {
			t.Fatalf("parse error %v, but the attributes read %v (valid %v)", err, want, ok)
		}
		if err != nil {
			return
		}
		q := got[0]
		for c := Counter(attrQStatsFirst); c <= attrQStatsLast; c++ {
			w, reported := want[uint16(c)]
			if v, ok := q.Value(c); ok != reported || v != w {
				t.Fatalf("%v = %d, %v; want %d, %v", c, v, ok, w, reported)
			}
		}
		_, typ := want[attrQStatsQueueType]
		_, id := want[attrQStatsQueueID]
		if (q.Scope == ScopeQueue) != (typ || id) || q.Ifindex != uint32(want[attrQStatsIfindex]) {
			t.Fatalf("parsed %+v from %v", q, want)
		}
	})
}

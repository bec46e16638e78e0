package trace

import (
	"reflect"
	"testing"
	"time"
)

// The decoders read map entries the kernel wrote; fuzzing them with arbitrary bytes checks that they never panic,
// that they refuse exactly the entries of the wrong size, and that what they decode survives encoding and
// decoding again (the encoders are the tests' way of writing entries, and the layout the programs write).

// fuzzDecoder runs the shared properties for one entry layout.
func fuzzDecoder[T any](t *testing.T, k, v []byte, kSize, vSize int, decode func(k, v []byte) (T, error),
	encode func(T) (k, v []byte)) {
	got, err := decode(k, v)
	if wantOK := len(k) == kSize && len(v) == vSize; (err == nil) != wantOK {
		t.Fatalf("decode of a %d-byte key and %d-byte value: error %v", len(k), len(v), err)
	}
	if err != nil {
		return
	}
	k2, v2 := encode(got)
	again, err := decode(k2, v2)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", got, again, err)
	}
}

func FuzzDecodePoll(f *testing.F) {
	k, v := encodePoll(PollStat{NAPIID: 259, TID: 812, PID: 812, CPU: 1, Comm: "napi/veth-b-259", Kthread: true,
		Polls: 370, Packets: 1001, PerPoll: Hist{Counts: [Buckets]uint64{1: 339, 2: 15, 7: 6}}})
	f.Add(k, v)
	f.Add(k[:8], v)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		fuzzDecoder(t, k, v, pollKeySize, pollValSize, decodePoll, encodePoll)
		if p, err := decodePoll(k, v); err == nil && (p.NAPIID != ne.Uint32(k) || p.Softirq != (ne.Uint32(k[pkFlags:])&flagSoftirq != 0)) {
			t.Fatalf("decoded %+v from key %x", p, k)
		}
	})
}

func FuzzDecodeThread(f *testing.F) {
	k, v := encodeThread(ThreadSched{TID: 812, Comm: "rr-server", Poller: true, Voluntary: 3, Involuntary: 1,
		OffCPU: 5000, Wakeups: 3, WakeLatency: 900, WakeHist: Hist{Counts: [Buckets]uint64{9: 3}}})
	f.Add(k, v)
	f.Add(k, v[:100])
	f.Fuzz(func(t *testing.T, k, v []byte) {
		fuzzDecoder(t, k, v, 4, threadValSize, decodeThread, encodeThread)
	})
}

func FuzzDecodePreempt(f *testing.F) {
	type entry struct {
		victim int
		p      Preemptor
	}
	k, v := encodePreempt(812, Preemptor{TID: 17, Comm: "kworker/1:1", Count: 4, OffCPU: 1840 * time.Microsecond,
		Longest: 1210 * time.Microsecond})
	f.Add(k, v)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		fuzzDecoder(t, k, v, preemptKeySize, preemptValSize,
			func(k, v []byte) (entry, error) { victim, p, err := decodePreempt(k, v); return entry{victim, p}, err },
			func(e entry) ([]byte, []byte) { return encodePreempt(e.victim, e.p) })
	})
}

func FuzzDecodeIRQ(f *testing.F) {
	k, v := encodeIRQ(IRQCount{IRQ: 36, CPU: 1, Count: 99})
	f.Add(k, v)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		fuzzDecoder(t, k, v, irqKeySize, irqValSize, decodeIRQ, encodeIRQ)
	})
}

func FuzzDecodeSyscall(f *testing.F) {
	k, v := encodeSyscall(SyscallStat{TID: 812, PID: 800, Comm: "rr-recv", NR: 45, Count: 9997, Total: 6937000,
		Time: Hist{Counts: [Buckets]uint64{10: 9000, 11: 997}}})
	f.Add(k, v)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		fuzzDecoder(t, k, v, sysKeySize, sysValSize, decodeSyscall, encodeSyscall)
	})
}

func FuzzDecodeXSK(f *testing.F) {
	f.Add(encodeXSK(Hist{Counts: [Buckets]uint64{8: 24073, 9: 55633}}, 1234567))
	f.Fuzz(func(t *testing.T, v []byte) {
		type entry struct {
			h     Hist
			total int64
		}
		fuzzDecoder(t, nil, v, 0, xskValSize,
			func(_, v []byte) (entry, error) { h, d, err := decodeXSK(v); return entry{h, int64(d)}, err },
			func(e entry) ([]byte, []byte) { return nil, encodeXSK(e.h, time.Duration(e.total)) })
	})
}

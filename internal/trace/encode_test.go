package trace

import "time"

// The encoders are the decoders' inverse, for the fuzz tests: what the eBPF programs write, written in Go.

func encodeIRQ(c IRQCount) (k, v []byte) {
	k, v = make([]byte, irqKeySize), make([]byte, irqValSize)
	ne.PutUint32(k[ikIRQ:], uint32(c.IRQ))
	ne.PutUint32(k[ikCPU:], uint32(c.CPU))
	ne.PutUint64(v, c.Count)
	return k, v
}

func encodeSyscall(s SyscallStat) (k, v []byte) {
	k, v = make([]byte, sysKeySize), make([]byte, sysValSize)
	ne.PutUint32(k[skTID:], uint32(s.TID))
	ne.PutUint32(k[skNR:], uint32(s.NR))
	ne.PutUint64(v[svCount:], s.Count)
	ne.PutUint64(v[svErrors:], s.Errors)
	ne.PutUint64(v[svTotal:], uint64(s.Total))
	encodeHist(v[svHist:], &s.Time)
	ne.PutUint32(v[svPID:], uint32(s.PID))
	copy(v[svComm:svComm+commLen-1], s.Comm)
	return k, v
}

func encodeXSK(h Hist, total time.Duration) []byte {
	v := make([]byte, xskValSize)
	encodeHist(v[xvHist:], &h)
	ne.PutUint64(v[xvTotal:], uint64(total))
	return v
}

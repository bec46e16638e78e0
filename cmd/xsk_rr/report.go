package main

import (
	"strconv"

	"github.com/napilab/napilab/internal/rr"
)

// appendInterval appends what the client prints for one interval: the original's block byte for byte and,
// unless exact, napilab's true line. The true percentiles are of the same round trips the "pN" columns
// summarise (timed from the actual send and paired first-in-first-out, as the original pairs them); the rate is
// replies over the interval's real length rather than over -l whole seconds.
func appendInterval(dst []byte, iv rr.Interval, exact bool) []byte {
	dst = append(dst, iv.XskRR...)
	if exact {
		return dst
	}
	l := iv.LatencyToSent
	dst = append(dst, "true:"...)
	dst = appendLatencies(dst, l.P50, l.P90, l.P99, l.P999, l.Max)
	dst = appendInt(dst, " mean: ", int64(l.Mean))
	dst = strconv.AppendFloat(append(dst, " rate: "...), iv.Rate, 'f', 1, 64)
	dst = appendInt(dst, " sent: ", int64(iv.Sent))
	return append(dst, '\n')
}

// appendClientTotal appends the line a client prints when it stops: what was sent, answered and never answered
// (after waiting for the replies in flight), the replies per second over the whole run, the run's true
// percentiles, how late the sender was against its schedule (p99), and how long the receive loop was away from
// its ring (rr.LoopGaps: in all, and the longest).
func appendClientTotal(dst []byte, res *rr.ClientResult) []byte {
	dst = appendInt(dst, "total: sent: ", int64(res.Sent))
	dst = appendInt(dst, " answered: ", int64(res.Answered))
	dst = appendInt(dst, " lost: ", int64(res.Lost))
	rate := 0.0
	if res.Window > 0 {
		rate = res.ReplyRate
	}
	dst = strconv.AppendFloat(append(dst, " rate: "...), rate, 'f', 1, 64)
	l := res.LatencyFromSend
	dst = appendLatencies(dst, l.P50, l.P90, l.P99, l.P999, l.Max)
	dst = appendInt(dst, " late-p99: ", res.SenderLateness.P99)
	dst = appendInt(dst, " loop-away: ", int64(res.LoopGaps.Total))
	dst = appendInt(dst, " loop-away-max: ", int64(res.LoopGaps.Longest))
	return append(dst, '\n')
}

// appendServerTotal appends the line a server prints when it stops.
func appendServerTotal(dst []byte, st rr.ServerStats) []byte {
	dst = appendInt(dst, "total: received: ", int64(st.Received))
	dst = appendInt(dst, " replied: ", int64(st.Replied))
	dst = appendInt(dst, " malformed: ", int64(st.Malformed))
	dst = appendInt(dst, " bad-payload: ", int64(st.BadPayload))
	dst = appendInt(dst, " refused: ", int64(st.Refused())) // every reason, the two above included
	dst = appendInt(dst, " tx-full: ", int64(st.TXFull))
	dst = appendInt(dst, " max_desc: ", int64(st.MaxBatch))
	dst = appendInt(dst, " busy-p50: ", st.Busy.P50)
	dst = appendInt(dst, " busy-p99: ", st.Busy.P99)
	return append(dst, '\n')
}

func appendLatencies(dst []byte, p50, p90, p99, p999, max int64) []byte {
	dst = appendInt(dst, " p50: ", p50)
	dst = appendInt(dst, " p90: ", p90)
	dst = appendInt(dst, " p99: ", p99)
	dst = appendInt(dst, " p99.9: ", p999)
	return appendInt(dst, " max: ", max)
}

func appendInt(dst []byte, label string, v int64) []byte {
	return strconv.AppendInt(append(dst, label...), v, 10)
}

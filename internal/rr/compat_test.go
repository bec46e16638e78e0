package rr

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// TestStopSendingDrains: xsk_rr runs until SIGINT and its final report must not call the last round trips lost.
// A closed-loop client keeps 4 requests in flight against a server that sleeps 1 ms per request, so a stop
// almost always finds several unanswered; the run is meant to last an hour, so only the stop (from the first
// interval report) can end it. A graceful stop sends nothing more and awaits them.
func TestStopSendingDrains(t *testing.T) {
	testenv.Exclusive(t)
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	m := newMemRun(false)
	m.client.Format, m.server.Format = FormatXskRR, FormatXskRR
	m.client.Period, m.client.Outstanding, m.client.Count = 0, 4, 0
	m.client.Duration, m.client.Interval = time.Hour, 20*time.Millisecond
	m.server.Delay, m.server.DelaySleeps = time.Millisecond, true

	stopSending := make(chan struct{})
	var once sync.Once
	opts := ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2, StopSending: stopSending,
		OnInterval: func(Interval) { once.Do(func() { close(stopSending) }) }}
	srv, err := NewServer(pair.B, m.server.Service, m.server.Threads, m.srvOpts)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, opts)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := Exchange(context.Background(), srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("elapsed %v sent %d answered %d", res.Elapsed, res.Sent, res.Answered)
	if !res.StoppedEarly || res.Sent == 0 || res.Lost != 0 || res.Answered != res.Sent {
		t.Fatalf("sent %d answered %d lost %d stopped early %v; want a stopped run with every request answered",
			res.Sent, res.Answered, res.Lost, res.StoppedEarly)
	}
	// The final report covers the partial interval up to the stop: the intervals add up to the run.
	var sent, replies uint64
	for _, iv := range res.Intervals {
		sent += iv.Sent
		replies += iv.Replies
	}
	if len(res.Intervals) < 2 || sent != res.Sent || replies != res.Measured {
		t.Fatalf("%d intervals hold %d sent and %d replies; the run sent %d and measured %d",
			len(res.Intervals), sent, replies, res.Sent, res.Measured)
	}
}

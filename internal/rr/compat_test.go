package rr

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// stopRun runs a closed-loop xsk_rr-format client with 4 requests in flight against a server that takes 200 µs
// per request, so at any moment at least 3 requests are unanswered, and ends it from the first interval report:
// gracefully through ClientOptions.StopSending, or at once by cancelling the context. The run is meant to last
// an hour, so only the stop can end it.
func stopRun(t *testing.T, graceful bool) *ClientResult {
	t.Helper()
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
	m.server.Delay = 200 * time.Microsecond

	stopSending := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	opts := ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2, StopSending: stopSending,
		OnInterval: func(Interval) {
			once.Do(func() {
				if graceful {
					close(stopSending)
				} else {
					cancel()
				}
			})
		}}
	srv, err := NewServer(pair.B, m.server, m.srvOpts)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(pair.A, m.client, opts)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = srv.Run(sctx) }()
	<-srv.Ready()
	res, err := cli.Run(ctx)
	stopServer()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !res.StoppedEarly || res.Sent == 0 {
		t.Fatalf("sent %d, stopped early %v: want a run cut short by the stop", res.Sent, res.StoppedEarly)
	}
	return res
}

// TestStopSendingDrains: xsk_rr runs until SIGINT and its final report must not call the last round trips lost.
// A graceful stop awaits the replies in flight; cancelling the run instead leaves them unanswered.
func TestStopSendingDrains(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		res := stopRun(t, true)
		t.Logf("elapsed %v sent %d answered %d", res.Elapsed, res.Sent, res.Answered)
		if res.Lost != 0 || res.Answered != res.Sent {
			t.Fatalf("sent %d answered %d lost %d; want every request answered", res.Sent, res.Answered, res.Lost)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		res := stopRun(t, false)
		if res.Lost < 3 {
			t.Fatalf("sent %d answered %d lost %d; want the 3 or 4 requests in flight lost", res.Sent, res.Answered, res.Lost)
		}
	})
}

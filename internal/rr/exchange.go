package rr

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Exchange runs one client run against a server in the same process, as a one-machine testbed or a sweep does:
// the server serves from before the client's first request until the client's run is over, then stops. Either
// side's error is returned, naming the side; the server's statistics cover exactly this run.
func Exchange(ctx context.Context, srv *Server, cli *Client) (*ClientResult, ServerStats, error) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var st ServerStats
	var srvErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, srvErr = srv.Run(sctx)
	}()
	<-srv.Ready()
	res, cliErr := cli.Run(ctx)
	stop()
	wg.Wait()
	var errs []error
	if cliErr != nil {
		errs = append(errs, fmt.Errorf("client: %w", cliErr))
	}
	if srvErr != nil {
		errs = append(errs, fmt.Errorf("server: %w", srvErr))
	}
	return res, st, errors.Join(errs...)
}

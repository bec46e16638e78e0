package sweep

import (
	"context"
	"errors"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/rr"
)

// LocalClient is a client end in this process, on a device in the network namespace at NSPath ("" for
// napilab's own): the default client of a sweep, with the same code a client agent runs.
type LocalClient struct {
	NSPath string
	c      agent.Client
}

// ClientOpen opens the client's datapath.
func (l *LocalClient) ClientOpen(ctx context.Context, a agent.ClientOpenArgs) (rr.LinkInfo, error) {
	if l.c != nil {
		return rr.LinkInfo{}, errors.New("the client's link is open already")
	}
	c, info, err := agent.OpenClient(ctx, a, l.NSPath)
	if err != nil {
		return rr.LinkInfo{}, err
	}
	l.c = c
	return info, nil
}

// ClientRun runs one cell.
func (l *LocalClient) ClientRun(ctx context.Context, a agent.ClientRunArgs) (*rr.ClientResult, error) {
	if l.c == nil {
		return nil, errors.New("client-run before client-open")
	}
	return l.c.Run(ctx, a.Workload, a.Threads)
}

// Close closes the client's datapath.
func (l *LocalClient) Close() error {
	if l.c == nil {
		return nil
	}
	err := l.c.Close()
	l.c = nil
	return err
}

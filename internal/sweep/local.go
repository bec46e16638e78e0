package sweep

import (
	"context"
	"errors"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

// LocalClient is a client end in this process, on a device in the network namespace at NSPath ("" for
// napilab's own): the default client of a sweep, with the same code a client agent runs.
type LocalClient struct {
	NSPath string
	Dev    string // the client's device, for the journal of a unit stopped on this host
	c      agent.Client
	held   *napi.Held
	sys    *napi.System
}

// StopService stops unit on this host until Close, journaled in the client device's directory (a crash leaves
// a journal that napilab mode restore, or the next sweep on that device, puts back). lease is unused: this
// process holds it, and stopping the process releases it.
func (l *LocalClient) StopService(ctx context.Context, unit string, _ time.Duration) (agent.StopServiceResult, error) {
	sys, err := napi.Open(l.NSPath)
	if err != nil {
		return agent.StopServiceResult{}, err
	}
	t, err := sys.DeviceTarget(l.Dev)
	if err != nil {
		sys.Close()
		return agent.StopServiceResult{}, err
	}
	h, err := sys.Hold(ctx, napi.ServicePlan(t, unit, "it moves IRQ affinity back behind napilab's back"),
		napi.HoldOptions{ApplyOptions: napi.ApplyOptions{Journal: napi.NewJournalPath(napi.DeviceDir(t))}})
	if err != nil {
		sys.Close()
		return agent.StopServiceResult{}, err
	}
	l.held, l.sys = h, sys
	j := h.Applied().Journal
	res := agent.StopServiceResult{Journal: j.Path()}
	if p := j.Entries[0].Prior; p != nil && p.Service != nil {
		res.WasActive = p.Service.Active
	}
	return res, nil
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

// Close closes the client's datapath and starts again a unit StopService stopped.
func (l *LocalClient) Close() error {
	var errs []error
	if l.held != nil {
		_, err := l.held.Release()
		errs = append(errs, err, l.sys.Close())
		l.held, l.sys = nil, nil
	}
	if l.c != nil {
		errs = append(errs, l.c.Close())
		l.c = nil
	}
	return errors.Join(errs...)
}

//go:build !linux

package rr

import (
	"context"
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// Link is one end's AF_XDP datapath; AF_XDP exists only on Linux.
type Link struct {
	Sock *xsk.Socket
	Prog *xdp.Program
	Info LinkInfo
}

// OpenLink is only implemented on Linux.
func OpenLink(context.Context, LinkOptions) (*Link, error) {
	return nil, fmt.Errorf("AF_XDP on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}

// Close does nothing.
func (l *Link) Close() error { return nil }

// OpenLinkIn is only implemented on Linux.
func OpenLinkIn(ctx context.Context, o LinkOptions, _ string) (*Link, error) { return OpenLink(ctx, o) }

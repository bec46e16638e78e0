package rr

import (
	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
)

// The names a program driving rr needs from the packages rr is built on, so that a main imports rr alone.

// ChecksumPolicy says whether a server checks the checksums of requests and recomputes those of its replies
// (ServerOptions.Checksums).
type ChecksumPolicy = frame.ChecksumPolicy

const (
	// KeepChecksums is right when every client writes full checksums (napilab, xsk_rr).
	KeepChecksums = frame.KeepChecksums
	// RecomputeChecksums is needed when kernel stacks send the requests: veth leaves their UDP checksums
	// partial.
	RecomputeChecksums = frame.RecomputeChecksums
	// TrustChecksums checks no checksum: the server never reads a payload it need not (the original xsk_rr's
	// server reads none), and a corrupted request is answered like any other.
	TrustChecksums = frame.TrustChecksums
)

// XskRRVersion selects the spelling of xsk_rr's report lines (ClientOptions.XskRRVersion).
type XskRRVersion = hist.XskRRVersion

// The xsk_rr RFC versions whose report lines rr can reproduce.
const (
	XskRRv1 = hist.XskRRv1
	XskRRv2 = hist.XskRRv2
)

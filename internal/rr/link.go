package rr

import "github.com/napilab/napilab/internal/frame"

// LinkInfo is what opening a link resolved, for the record of a run.
type LinkInfo struct {
	Dev      string         `json:"dev"`
	Ifindex  int            `json:"ifindex"`
	Queue    int            `json:"queue"`
	XDPMode  string         `json:"xdp_mode"`  // as attached: native or generic
	ZeroCopy bool           `json:"zero_copy"` // as bound
	NAPIID   uint32         `json:"napi_id"`   // SO_INCOMING_NAPI_ID; 0: busy polling cannot reach the device
	Local    frame.Endpoint `json:"-"`
	Peer     frame.Endpoint `json:"-"` // zero for an echo server
	LocalMAC string         `json:"local_mac"`
	LocalIP  string         `json:"local_ip,omitempty"`
	PeerMAC  string         `json:"peer_mac,omitempty"`
	PeerIP   string         `json:"peer_ip,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

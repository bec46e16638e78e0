package rr

import (
	"errors"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/xsk"
)

// LinkInfo is what opening a link resolved, for the record of a run.
type LinkInfo struct {
	Dev      string         `json:"dev"`
	Ifindex  int            `json:"ifindex"`
	Queue    int            `json:"queue"`
	XDPMode  string         `json:"xdp_mode"`  // as attached: native or generic
	ZeroCopy bool           `json:"zero_copy"` // as bound
	NAPIID   uint32         `json:"napi_id"`   // SO_INCOMING_NAPI_ID; 0: busy polling cannot reach the device
	MTU      int            `json:"mtu"`       // the device's; requests and replies must fit it
	Local    frame.Endpoint `json:"-"`
	Peer     frame.Endpoint `json:"-"` // zero for an echo server
	LocalMAC string         `json:"local_mac"`
	LocalIP  string         `json:"local_ip,omitempty"`
	PeerMAC  string         `json:"peer_mac,omitempty"`
	PeerIP   string         `json:"peer_ip,omitempty"`
	Notes    []note.Note    `json:"notes,omitempty"`
}

// BusyPollNotes says, for a socket that will busy-poll (socket options, or a poll thread kicking it), when that
// cannot reach the device: the kernel copies a queue's NAPI id into the socket at bind, and a driver that does
// not link its queues to NAPIs leaves it 0, so every busy-poll pass finds nothing to poll.
func (l LinkInfo) BusyPollNotes() []note.Note {
	if l.NAPIID != 0 {
		return nil
	}
	return []note.Note{note.Warnf("the socket on %s queue %d has no NAPI id, so its busy polling reaches no NAPI "+
		"(the driver does not link its queues to NAPIs; veth does not as of Linux 6.18): the numbers do not show "+
		"busy polling, though kernel-side settings still apply", l.Dev, l.Queue)}
}

// CheckMTU refuses a payload whose IP datagram exceeds a device's MTU: the device would drop every such frame
// silently, and the run would report 100% loss. ipv6 selects the header sizes (20 or 40 bytes of IP, 8 of UDP).
// An MTU of 0 (unknown) is not checked.
func CheckMTU(payload, mtu int, ipv6 bool) error {
	hdr := frame.IPv4MinLen + frame.UDPLen
	fam := "IPv4"
	if ipv6 {
		hdr, fam = frame.IPv6Len+frame.UDPLen, "IPv6"
	}
	if mtu > 0 && payload+hdr > mtu {
		return kernel.Fieldf("payload", "of %d bytes does not fit the device's MTU of %d: with %d bytes of %s and "+
			"UDP headers a payload takes at most %d bytes there", payload, mtu, hdr, fam, max(mtu-hdr, 0))
	}
	return nil
}

// SetBusyPoll puts b on the socket: every option, so that a sweep switching modes over one socket also clears
// the previous mode's (zero values clear; SO_BUSY_POLL 0 turns busy polling off for the socket).
func SetBusyPoll(s *xsk.Socket, b BusyPoll) error {
	return errors.Join(s.SetBusyPoll(time.Duration(b.Usec)*time.Microsecond), s.SetPreferBusyPoll(b.Prefer),
		s.SetBusyPollBudget(b.Budget))
}

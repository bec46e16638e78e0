package netdev

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// failed wraps a netlink error in napilab's error model: the operation and subject in a *kernel.OpError (whose
// Is maps ENOENT/ENODEV to os.ErrNotExist and EPERM to os.ErrPermission), a fix for the user when there is one,
// and a *kernel.UnsupportedError when the kernel does not know the operation. The netlink error, including the
// kernel's extended-ACK message, stays in the chain and in the text.
func (c *Client) failed(op, subject string, err error, notFound string) error {
	oe := &kernel.OpError{Op: op, Subject: subject, Err: err}
	switch {
	case errors.Is(oe, os.ErrNotExist) && notFound != "": // OpError.Is counts ENODEV too
		return kernel.WithHint(oe, notFound)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return kernel.WithHint(oe, cmdName(op)+" needs CAP_NET_ADMIN: run as root")
	case errors.Is(err, unix.EOPNOTSUPP):
		// Generic netlink answers EOPNOTSUPP for a command the family does not have (yet).
		if feature, since := opIntroduced(op); since != "" {
			return &kernel.UnsupportedError{Feature: feature, MinKernel: since, Err: oe}
		}
	}
	return oe
}

// opIntroduced names what an operation provides and the first kernel that has it.
func opIntroduced(op string) (feature, since string) {
	switch cmdName(op) {
	case "queue-get", "napi-get":
		return "queue and NAPI queries over netlink (" + cmdName(op) + ")", "6.8"
	case "qstats-get":
		return "per-queue statistics over netlink (qstats-get)", "6.9"
	case "napi-set":
		return "per-NAPI configuration (napi-set)", "6.13"
	}
	return "", ""
}

// cmdName strips " dump" from an operation name.
func cmdName(op string) string {
	name, _, _ := strings.Cut(op, " ")
	return name
}

// napiSetUnsupported recognises a napi-set refused because this kernel lacks a setting, from the attribute the
// kernel's extended ACK blames (or, without one, from what the request asked for). It returns nil for any other
// failure. napiSetRequest has already refused values outside the kernel's ranges, so a range or validity error
// here is about a setting the kernel does not have.
func napiSetUnsupported(req []byte, cfg NAPIConfig, err error) *kernel.UnsupportedError {
	rangeErr, invalid := errors.Is(err, unix.ERANGE), errors.Is(err, unix.EINVAL)
	if !rangeErr && !invalid {
		return nil
	}
	blamed, ok := uint16(0), false
	var nlErr *netlink.OpError
	if errors.As(err, &nlErr) && nlErr.Offset != 0 {
		blamed, ok = attrAt(req, nlErr.Offset)
	}
	if !ok { // no extended ACK: blame the newest setting the request carries
		switch {
		case cfg.Threaded != nil:
			blamed = attrNAPIThreaded
		case cfg.IRQSuspendTimeout != nil && invalid:
			blamed = attrNAPIIRQSuspendTimeout
		default:
			return nil
		}
	}
	switch {
	case blamed == attrNAPIThreaded && cfg.Threaded != nil && *cfg.Threaded == ThreadedBusyPoll:
		// 6.17 and 6.18 cap the threaded policy at 1 (ERANGE); 6.13–6.16 do not know the attribute (EINVAL).
		return &kernel.UnsupportedError{Feature: "threaded NAPI busy poll", MinKernel: "6.19"}
	case blamed == attrNAPIThreaded && invalid:
		return &kernel.UnsupportedError{Feature: "per-NAPI threaded NAPI", MinKernel: "6.17"}
	case blamed == attrNAPIIRQSuspendTimeout && invalid:
		return &kernel.UnsupportedError{Feature: "irq-suspend-timeout", MinKernel: "6.13"}
	}
	return nil
}

func noDevice(ifindex uint32) string {
	if ifindex == 0 {
		return ""
	}
	return fmt.Sprintf("no network device has ifindex %d in this network namespace: "+
		"check the ifindex and the namespace the client was dialled in", ifindex)
}

func noNAPI(id uint32) string {
	return fmt.Sprintf("no NAPI instance has id %d in this network namespace: list a device's NAPIs with a "+
		"napi-get dump (a veth has NAPIs only while XDP or GRO is on)", id)
}

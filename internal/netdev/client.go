package netdev

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// Options configure Dial.
type Options struct {
	// NetNS is an open network namespace file (e.g. from netns.GetFromName). The client then queries and
	// configures the devices of that namespace, from any goroutine. 0 means the calling thread's namespace.
	NetNS int
	// Timeout bounds every request; 0 means 5 s. The kernel answers in microseconds, so hitting it means a
	// request that the kernel never answers.
	Timeout time.Duration
}

const defaultTimeout = 5 * time.Second

// Client speaks the netdev family on one generic netlink socket. It is safe for concurrent use.
type Client struct {
	conn    *genetlink.Conn
	family  genetlink.Family
	timeout time.Duration

	mu       sync.Mutex
	features *Features // probed once per client: the kernel does not change under it
}

// NewClient wraps an existing generic netlink connection, for example one from netdevtest, and resolves the
// netdev family on it. Close closes conn.
func NewClient(conn *genetlink.Conn) (*Client, error) {
	return newClient(conn, 0)
}

func newClient(conn *genetlink.Conn, timeout time.Duration) (*Client, error) {
	c := &Client{conn: conn, timeout: timeout}
	if err := c.setDeadline(); err != nil {
		return nil, err
	}
	f, err := conn.GetFamily(familyName)
	if err != nil {
		op := kernel.NewOpError("resolve generic netlink family", familyName, err)
		if errors.Is(err, os.ErrNotExist) {
			return nil, &kernel.UnsupportedError{Feature: "the netdev generic netlink family", MinKernel: "6.3", Err: op}
		}
		return nil, op
	}
	c.family = f
	return c, nil
}

// Close closes the netlink socket.
func (c *Client) Close() error { return c.conn.Close() }

// Device returns the device with this ifindex (dev-get do).
func (c *Client) Device(ifindex uint32) (Device, error) {
	return get(c, "dev-get", fmt.Sprintf("ifindex %d", ifindex), cmdDevGet,
		u32Attrs(attrDevIfindex, ifindex), noDevice(ifindex), parseDevices)
}

// Devices returns every device of the namespace (dev-get dump).
func (c *Client) Devices() ([]Device, error) {
	return dump(c, "dev-get dump", cmdDevGet, nil, 0, parseDevices)
}

// Queue returns one queue of a device (queue-get do). The kernel answers an id beyond the device's queue count
// with a bare EINVAL; every attribute it needs is always sent, so EINVAL can only mean that, and the error
// matches os.ErrNotExist.
func (c *Client) Queue(ifindex uint32, typ QueueType, id uint32) (Queue, error) {
	const op = "queue-get"
	subject := fmt.Sprintf("ifindex %d %v queue %d", ifindex, typ, id)
	req, err := queueGetRequest(ifindex, typ, id)
	if err != nil {
		return Queue{}, kernel.NewOpError(op, subject, err)
	}
	return get(c, op, subject, cmdQueueGet, req, fmt.Sprintf(
		"device %d has no %v queue %d in this network namespace: list its queues with a queue-get dump",
		ifindex, typ, id), parseQueues)
}

// Queues returns the queues of the device with this ifindex, or of every device when ifindex is 0
// (queue-get dump; the filter is queue attribute 2).
func (c *Client) Queues(ifindex uint32) ([]Queue, error) {
	return dump(c, "queue-get dump", cmdQueueGet, ifindexFilter(attrQueueIfindex, ifindex), ifindex, parseQueues)
}

// NAPI returns the NAPI instance with this id (napi-get do).
func (c *Client) NAPI(id uint32) (NAPI, error) {
	return get(c, "napi-get", fmt.Sprintf("napi %d", id), cmdNAPIGet, u32Attrs(attrNAPIID, id), noNAPI(id),
		parseNAPIs)
}

// NAPIs returns the NAPI instances of the device with this ifindex, or of every device when ifindex is 0
// (napi-get dump; the filter is napi attribute 1).
func (c *Client) NAPIs(ifindex uint32) ([]NAPI, error) {
	return dump(c, "napi-get dump", cmdNAPIGet, ifindexFilter(attrNAPIIfindex, ifindex), ifindex, parseNAPIs)
}

// SetNAPI applies the non-nil fields of cfg to the NAPI instance with this id (napi-set, CAP_NET_ADMIN).
// The kernel checks the whole request against its policy before it changes anything, so a refused setting
// leaves the NAPI as it was. Settings this kernel lacks come back as *kernel.UnsupportedError.
func (c *Client) SetNAPI(id uint32, cfg NAPIConfig) error {
	const op = "napi-set"
	subject := fmt.Sprintf("napi %d", id)
	req, err := napiSetRequest(id, cfg)
	if err != nil {
		return kernel.NewOpError(op, subject, err)
	}
	// Without an ACK request the kernel sends nothing back for a set and the read would block until timeout.
	if _, err := c.execute(cmdNAPISet, netlink.Request|netlink.Acknowledge, req); err != nil {
		if f := napiSetUnsupported(req, cfg, err); f != nil {
			f.Err = kernel.NewOpError(op, subject, err)
			return f
		}
		return c.failed(op, subject, err, noNAPI(id))
	}
	return nil
}

// QStats returns the statistics of the device with this ifindex, or of every device reporting any when
// ifindex is 0: one record per device (ScopeDevice) or per queue (ScopeQueue). Devices whose driver keeps no
// queue statistics (veth, lo) are left out.
func (c *Client) QStats(ifindex uint32, scope Scope) ([]QStats, error) {
	const op = "qstats-get dump"
	req, err := qstatsRequest(ifindex, scope)
	if err != nil {
		return nil, kernel.NewOpError(op, dumpSubject(ifindex), err)
	}
	return dump(c, op, cmdQStatsGet, req, ifindex, parseQStats)
}

// Features reports what napi-set accepts on this kernel. It reads the policy the kernel publishes for napi-set
// (CTRL_CMD_GETPOLICY) instead of trying settings, so it never changes a NAPI and needs no privileges.
func (c *Client) Features() (Features, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.features != nil {
		return *c.features, nil
	}
	const op = "probe napi-set policy"
	req, err := policyRequest(c.family.ID, cmdNAPISet)
	if err != nil {
		return Features{}, kernel.NewOpError(op, "", err)
	}
	msgs, err := c.executeFamily(genlIDCtrl, ctrlCmdGetPolicy, netlink.Request|netlink.Dump, req)
	var f Features
	switch {
	case errors.Is(err, unix.ENOENT):
		// The controller knows no napi-set operation: a kernel before 6.13 offers none of the features.
	case err != nil:
		return Features{}, c.failed(op, "", err, "")
	default:
		pol, err := parsePolicy(msgs, cmdNAPISet, ctrlAttrPolicyDo)
		if err != nil {
			return Features{}, kernel.NewOpError(op, "", err)
		}
		threaded, ok := pol[attrNAPIThreaded]
		f = Features{
			NAPISet:           true,
			IRQSuspendTimeout: hasAttr(pol, attrNAPIIRQSuspendTimeout),
			PerNAPIThreaded:   ok,
			ThreadedBusyPoll:  ok && (!threaded.HasMax || threaded.Max >= uint64(ThreadedBusyPoll)),
		}
	}
	c.features = &f
	return f, nil
}

func hasAttr(pol map[uint16]attrPolicy, attr uint16) bool {
	_, ok := pol[attr]
	return ok
}

func (c *Client) execute(cmd uint8, flags netlink.HeaderFlags, data []byte) ([]genetlink.Message, error) {
	return c.executeFamily(c.family.ID, cmd, flags, data)
}

func (c *Client) executeFamily(family uint16, cmd uint8, flags netlink.HeaderFlags, data []byte) ([]genetlink.Message, error) {
	if err := c.setDeadline(); err != nil {
		return nil, err
	}
	return c.conn.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: familyVersion},
		Data:   data,
	}, family, flags)
}

func (c *Client) setDeadline() error {
	if c.timeout <= 0 {
		return nil
	}
	return kernel.NewOpError("set netlink deadline", "", c.conn.SetDeadline(time.Now().Add(c.timeout)))
}

// get runs a "do" request that the kernel answers with exactly one record.
func get[T any](c *Client, op, subject string, cmd uint8, req []byte, notFound string,
	parse func([]genetlink.Message) ([]T, error)) (T, error) {
	var zero T
	msgs, err := c.execute(cmd, netlink.Request, req)
	if errors.Is(err, unix.EINVAL) && cmd == cmdQueueGet {
		err = kernel.Mark(err, os.ErrNotExist)
	}
	if err != nil {
		return zero, c.failed(op, subject, err, notFound)
	}
	vs, err := parse(msgs)
	if err == nil && len(vs) != 1 {
		err = fmt.Errorf("kernel sent %d replies, want 1", len(vs))
	}
	if err != nil {
		return zero, kernel.NewOpError(op, subject, err)
	}
	return vs[0], nil
}

// dump runs a dump request, filtered by ifindex when it is not 0.
func dump[T any](c *Client, op string, cmd uint8, req []byte, ifindex uint32,
	parse func([]genetlink.Message) ([]T, error)) ([]T, error) {
	subject := dumpSubject(ifindex)
	msgs, err := c.execute(cmd, netlink.Request|netlink.Dump, req)
	if err != nil {
		return nil, c.failed(op, subject, err, noDevice(ifindex))
	}
	vs, err := parse(msgs)
	if err != nil {
		return nil, kernel.NewOpError(op, subject, err)
	}
	return vs, nil
}

func dumpSubject(ifindex uint32) string {
	if ifindex == 0 {
		return ""
	}
	return fmt.Sprintf("ifindex %d", ifindex)
}

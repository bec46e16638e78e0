package trace

// Device is a network device as a trace of its NAPIs needs it: the NAPI ids the kernel gave its queues (from the
// netdev family, in the device's namespace) and the IRQs that schedule them.
type Device struct {
	Name    string       `json:"name"`
	NetNS   string       `json:"netns,omitempty"` // path of its network namespace; empty for napilab's own
	Ifindex int          `json:"ifindex"`
	NAPIs   []DeviceNAPI `json:"napis"`
	IRQs    []int        `json:"irqs,omitempty"` // of all its NAPIs; none for a device without interrupts (veth)
}

// DeviceNAPI is one NAPI instance of a device.
type DeviceNAPI struct {
	ID       uint32 `json:"napi_id"`
	RXQueues []int  `json:"rx_queues,omitempty"` // the rx queues it services, when the driver says (veth does not)
	IRQs     []int  `json:"irqs,omitempty"`
	Kthread  int    `json:"kthread,omitempty"` // pid of napi/<dev>-<id> while the NAPI is threaded
}

// Target returns what to observe for the device: all its NAPIs and IRQs.
func (d Device) Target() Target {
	t := Target{IRQs: d.IRQs}
	for _, n := range d.NAPIs {
		t.NAPIs = append(t.NAPIs, n.ID)
	}
	return t
}

// Kthreads returns the pids of the device's NAPI kthreads (threaded NAPIs only).
func (d Device) Kthreads() []int {
	var pids []int
	for _, n := range d.NAPIs {
		if n.Kthread != 0 {
			pids = append(pids, n.Kthread)
		}
	}
	return pids
}

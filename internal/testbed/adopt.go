package testbed

// adoption is what giving adopted devices (Topology.Devices) back needs: the namespace they came from and
// their MTUs there.
type adoption struct {
	home *Host
	mtu  [2]int // of A's and B's device before adoption; 0 while not moved
}

package netdev_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
)

// Put every NAPI instance of a device into threaded busy poll where the kernel can, and fall back to threaded
// NAPI where it cannot. (Compile-only: it needs CAP_NET_ADMIN and changes the machine.)
func ExampleClient_SetNAPI() {
	c, err := netdev.Dial(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	napis, err := c.NAPIs(4)
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range napis {
		err := c.SetNAPI(n.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedBusyPoll)})
		if errors.Is(err, kernel.ErrNotSupported) {
			err = c.SetNAPI(n.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedEnabled)})
		}
		if err != nil {
			log.Fatal(err)
		}
		n, err = c.NAPI(n.ID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("napi %d: %v, kthread %d\n", n.ID, n.Threaded, n.PID)
	}
}

func ExampleXDPFeatures_String() {
	fmt.Println(netdev.XDPFeatures(0x2b))
	// Output: basic|redirect|xsk-zerocopy|rx-sg
}

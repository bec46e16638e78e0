package main

import (
	"fmt"

	"github.com/napilab/napilab/internal/napi"
)

type showCmd struct {
	Device string `arg:"" optional:"" name:"device" placeholder:"IFACE" help:"Show only this device."`
	Dev    string `name:"dev" placeholder:"IFACE" help:"Show only this device (same as the argument)."`
	NetNS  string `name:"netns" placeholder:"NAME" help:"Network namespace to look in: a name under /run/netns or a path."`
	JSON   bool   `name:"json" help:"Print JSON."`
}

func (c *showCmd) Run(std *stdio) error {
	dev := c.Device
	if c.Dev != "" {
		if dev != "" && dev != c.Dev {
			return fmt.Errorf("show: the argument %q and --dev %q name different devices: give one", dev, c.Dev)
		}
		dev = c.Dev
	}
	s, err := napi.Open(c.NetNS)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Show(dev)
	if err != nil {
		return netnsHint(err, dev, c.NetNS)
	}
	if c.JSON {
		return jsonOut(std.out, st)
	}
	fmt.Fprint(std.out, st.Format())
	return nil
}

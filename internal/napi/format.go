package napi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/netdev"
)

// Describe says in a few words what the change sets.
func (c Change) Describe() string {
	switch c.Kind {
	case KindNAPI:
		if c.recordOnly() {
			return fmt.Sprintf("napi %d: record its settings", c.NAPI)
		}
		return fmt.Sprintf("napi %d (rx-%d): %s", c.NAPI, c.Queue, c.Settings)
	case KindKnob:
		v := c.Value
		if v == "" && c.Knob.mask() {
			v = "none"
		}
		if u := c.Knob.unit(); u != "" && v != "-1" {
			v += " " + u
		}
		return fmt.Sprintf("%s = %s", c.Knob, v)
	case KindChannels:
		return "channels: " + channelsText(*c.Channels, " ")
	case KindRings:
		return fmt.Sprintf("rx ring: %d entries", c.Rings.RX)
	case KindCoalesce:
		return "coalescing: " + coalesceText(*c.Coalesce, " ")
	case KindKthread:
		return fmt.Sprintf("kthread of napi %d: SCHED_FIFO %d on CPU %s", c.NAPI, c.FIFO, c.CPUs)
	case KindService:
		return "stop " + c.Service
	}
	return string(c.Kind)
}

// channelsText lists the channel kinds the device has, e.g. "rx 1 tx 1" (sep " ") as ethtool -L takes them.
func channelsText(ch ethtool.Channels, sep string) string {
	var parts []string
	for _, k := range []struct {
		name     string
		cur, max uint32
	}{{"rx", ch.RX, ch.RXMax}, {"tx", ch.TX, ch.TXMax}, {"other", ch.Other, ch.OtherMax},
		{"combined", ch.Combined, ch.CombinedMax}} {
		if k.max > 0 {
			parts = append(parts, k.name+sep+strconv.FormatUint(uint64(k.cur), 10))
		}
	}
	return strings.Join(parts, " ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// coalesceText spells the parameters napilab sets as ethtool -C takes them.
func coalesceText(c ethtool.Coalesce, sep string) string {
	return fmt.Sprintf("adaptive-rx%[5]s%[1]s adaptive-tx%[5]s%[2]s rx-usecs%[5]s%[3]d tx-usecs%[5]s%[4]d",
		onOff(c.AdaptiveRX), onOff(c.AdaptiveTX), c.RXUsecs, c.TXUsecs, sep)
}

// Shell returns the shell commands that make the same change by hand (ynl, echo, ethtool, chrt, taskset),
// entered into the device's network namespace where the change is about the device.
func (c Change) Shell(t Target) string {
	dev := t.Device
	inNS := func(cmd string) string { return nsPrefix(t.NetNS, cmd) }
	switch c.Kind {
	case KindNAPI:
		if c.recordOnly() {
			return inNS(fmt.Sprintf(`ynl --family netdev --do napi-get --json '{"id": %d}'`, c.NAPI)) +
				"  # keep the output to restore it"
		}
		return inNS(fmt.Sprintf(`ynl --family netdev --do napi-set --json '%s'`, napiSetJSON(c.NAPI, *c.Settings)))
	case KindKnob:
		cmd := fmt.Sprintf("echo %s > %s", c.Knob.echoText(c.Value), c.Knob.Path())
		if c.Knob.device() && t.NetNS.Path != "" {
			return inNS("sh -c '" + cmd + "'")
		}
		return cmd
	case KindChannels:
		return inNS("ethtool -L " + dev + " " + channelsText(*c.Channels, " "))
	case KindRings:
		return inNS(fmt.Sprintf("ethtool -G %s rx %d", dev, c.Rings.RX))
	case KindCoalesce:
		return inNS("ethtool -C " + dev + " " + coalesceText(*c.Coalesce, " "))
	case KindKthread:
		get := inNS(fmt.Sprintf(`ynl --family netdev --do napi-get --json '{"id": %d}' --output-json`, c.NAPI))
		return fmt.Sprintf("pid=$(%s | jq .pid)\nchrt -f -p %d \"$pid\" && taskset -pc %s \"$pid\"", get, c.FIFO, c.CPUs)
	case KindService:
		return "systemctl stop " + c.Service
	}
	return ""
}

// nsPrefix runs cmd inside ns: `ip netns exec` for a named namespace, nsenter for any other path.
func nsPrefix(ns NetNS, cmd string) string {
	switch {
	case ns.Path == "":
		return cmd
	case strings.HasPrefix(ns.Path, "/run/netns/") && !strings.Contains(ns.Path[len("/run/netns/"):], "/"):
		return "ip netns exec " + ns.Path[len("/run/netns/"):] + " " + cmd
	}
	return "nsenter --net=" + ns.Path + " " + cmd
}

// napiSetJSON is the request as ynl takes it, with the kernel's attribute names and units (ns).
func napiSetJSON(id uint32, cfg NAPISettings) string {
	parts := []string{fmt.Sprintf(`"id": %d`, id)}
	if v := cfg.DeferHardIRQs; v != nil {
		parts = append(parts, fmt.Sprintf(`"defer-hard-irqs": %d`, *v))
	}
	if v := cfg.GROFlushTimeout; v != nil {
		parts = append(parts, fmt.Sprintf(`"gro-flush-timeout": %d`, v.Nanoseconds()))
	}
	if v := cfg.IRQSuspendTimeout; v != nil {
		parts = append(parts, fmt.Sprintf(`"irq-suspend-timeout": %d`, v.Nanoseconds()))
	}
	if cfg.Threaded != "" {
		parts = append(parts, fmt.Sprintf(`"threaded": %q`, cfg.Threaded))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Format renders the plan as a shell script: every change as a comment saying what and why, followed by the
// commands that would make it by hand. Pasting it reproduces the mode, without napilab's snapshot and restore.
func (p *Plan) Format() string {
	var b strings.Builder
	t, m := p.Target, p.Mode
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# napilab mode plan %s: %s (ifindex %d) in %s, poll CPU %d", m.Preset, t.Device, t.Ifindex, nsName(t.NetNS),
		p.PollCPU)
	for _, q := range t.Queues {
		irqs := "no IRQ of its own"
		if len(q.IRQs) > 0 {
			irqs = "IRQ " + joinInts(q.IRQs)
		}
		w("#   rx-%d is polled by NAPI %d (%s)", q.ID, q.NAPI.ID, irqs)
	}
	w("# kernel %s: %s", t.Kernel, featuresText(t.Features))
	w("# application side: %s", m.App)
	for _, r := range m.App.Requirements {
		w("#   requirement: %s", r)
	}
	for _, n := range p.Notes {
		w("#   note: %s", n.Text)
	}
	for i, c := range p.Changes {
		opt := ""
		if c.Optional {
			opt = " (skipped where the driver lacks it)"
		}
		w("\n# %d. %s%s\n#    %s", i+1, c.Describe(), opt, c.Why)
		w("%s", c.Shell(t))
	}
	return b.String()
}

func (a AppSide) String() string {
	parts := []string{"poll " + a.Poll}
	if a.Epoll {
		parts = append(parts, "epoll_wait with EPIOCSPARAMS")
	}
	if a.PreferBusyPoll {
		parts = append(parts, "SO_PREFER_BUSY_POLL 1")
	}
	if a.BusyPollBudget > 0 {
		parts = append(parts, fmt.Sprintf("SO_BUSY_POLL_BUDGET %d", a.BusyPollBudget))
	}
	return strings.Join(parts, ", ")
}

func featuresText(f netdev.Features) string {
	return fmt.Sprintf("per-NAPI config %s, irq-suspend-timeout %s, per-NAPI threaded %s, threaded busy poll %s",
		yesNo(f.NAPISet), yesNo(f.IRQSuspendTimeout), yesNo(f.PerNAPIThreaded), yesNo(f.ThreadedBusyPoll))
}

func nsName(ns NetNS) string {
	if ns.Path == "" {
		return "napilab's network namespace"
	}
	return "network namespace " + ns.Path
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

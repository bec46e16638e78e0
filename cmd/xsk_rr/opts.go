package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/rr"
)

// optstring is the original's getopt string; every letter means what it meant there.
const optstring = "46B:D:d:hi:l:m:M:no:p:P:S:tTv"

// options are the original's settings, with its defaults.
type options struct {
	family      int // 4 or 6; 0 until -4 or -6
	payload     int
	payloadAsk  int // -B as given, when it exceeded the original's 1024-byte cap
	daddr       string
	saddr       string
	delay       string // -d: ns on the client, µs on the server (as the original)
	server      bool
	ifname      string
	logInterval int
	macSrc      string
	macDst      string
	skipKick    bool
	outstanding int
	port        int
	period      string // -P: ns
	rxPolling   bool
	threaded    bool
	verify      bool

	help        bool // --help
	exactOutput bool // --exact-output: print only the original's lines
	// intervals, from the hidden --intervals N, makes a client stop sending after N report intervals, so a test
	// or a script gets a run of exactly N*l/P requests (open loop) without having to send a signal. It is left out
	// of --help because the original has nothing like it.
	intervals int
	// replyWait, from the hidden --reply-wait DURATION, is how long a client awaits replies after its last
	// request, and how long a closed loop waits for one, instead of the original's 1 s: tests on a slow machine
	// (the qemu lab on a busy host) set it generously, so a late reply is not counted lost.
	replyWait time.Duration
}

const maxPayloadOriginal = 1024

func defaultOptions() options {
	return options{payload: 200, ifname: "eth0", logInterval: 1, outstanding: 1}
}

// parseArgs parses argv (without the program name) with POSIX getopt rules: short options may be grouped
// (-hv), an option's argument may be attached (-B400) or separate (-B 400), "--" ends the options, and the first
// non-option argument ends them too. Two long options are napilab's: --help and --exact-output.
func parseArgs(args []string) (options, error) {
	o := defaultOptions()
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--":
			if i+1 < len(args) {
				return o, fmt.Errorf("unexpected argument %q: xsk_rr takes options only", args[i+1])
			}
			return o, nil
		case "--help":
			o.help = true
			continue
		case "--exact-output":
			o.exactOutput = true
			continue
		case "--reply-wait":
			if i+1 == len(args) {
				return o, errors.New("option --reply-wait needs a value")
			}
			i++
			var err error
			if o.replyWait, err = time.ParseDuration(args[i]); err != nil || o.replyWait <= 0 {
				return o, fmt.Errorf("--reply-wait %q: want a positive duration like 30s", args[i])
			}
			continue
		case "--intervals":
			if i+1 == len(args) {
				return o, errors.New("option --intervals needs a value")
			}
			i++
			var err error
			if o.intervals, err = atoi('-', args[i], 1, 1<<20); err != nil {
				return o, fmt.Errorf("--intervals %q: want a whole number from 1 to %d", args[i], 1<<20)
			}
			continue
		}
		if len(a) < 2 || a[0] != '-' || strings.HasPrefix(a, "--") {
			return o, fmt.Errorf("unexpected argument %q: xsk_rr takes options only (see --help)", a)
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(optstring, c)
			if k < 0 || c == ':' {
				return o, fmt.Errorf("unknown option -%c (see --help)", c)
			}
			var arg string
			if k+1 < len(optstring) && optstring[k+1] == ':' {
				if j+1 < len(a) {
					arg = a[j+1:]
				} else if i+1 < len(args) {
					i++
					arg = args[i]
				} else {
					return o, fmt.Errorf("option -%c needs a value", c)
				}
				j = len(a)
			}
			if err := o.set(c, arg); err != nil {
				return o, err
			}
		}
	}
	return o, nil
}

func (o *options) set(c byte, arg string) error {
	var err error
	switch c {
	case '4':
		o.family = 4
	case '6':
		o.family = 6
	case 'B':
		o.payload, err = atoi('B', arg, 1, 1<<30)
		if o.payload > maxPayloadOriginal {
			o.payload, o.payloadAsk = maxPayloadOriginal, o.payload
		}
	case 'D':
		o.daddr = arg
	case 'd':
		o.delay = arg
	case 'h':
		o.server = true
	case 'i':
		o.ifname = arg
	case 'l':
		o.logInterval, err = atoi('l', arg, 1, 86400)
	case 'm':
		o.macSrc = arg
	case 'M':
		o.macDst = arg
	case 'n':
		o.skipKick = true
	case 'o':
		o.outstanding, err = atoi('o', arg, 0, 1<<20)
	case 'p':
		o.port, err = atoi('p', arg, 1, 65535)
	case 'P':
		o.period = arg
	case 'S':
		o.saddr = arg
	case 't':
		o.rxPolling = true
	case 'T':
		o.threaded = true
	case 'v':
		o.verify = true
	}
	return err
}

func atoi(opt byte, s string, min, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("-%c %q: want a whole number from %d to %d", opt, s, min, max)
	}
	return n, nil
}

// parseNs parses -P and the client's -d: a bare number is nanoseconds, as the original compares them with
// CLOCK_MONOTONIC nanosecond differences; a unit suffix (80us, 30µs, 1ms) is napilab's extension.
func parseNs(opt byte, s string) (time.Duration, error) {
	return parseDuration(opt, s, time.Nanosecond)
}

// parseDuration parses a bare number in unit, or a Go duration with a unit suffix.
func parseDuration(opt byte, s string, unit time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("-%c %q: must not be negative", opt, s)
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(strings.ReplaceAll(s, "µ", "u"))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("-%c %q: want a number (%s) or a duration like 80us", opt, s, unitName(unit))
	}
	return d, nil
}

func unitName(unit time.Duration) string {
	if unit == time.Microsecond {
		return "microseconds"
	}
	return "nanoseconds"
}

// resolved is what the options mean once checked together.
type resolved struct {
	saddr, daddr   netip.Addr
	macSrc, macDst net.HardwareAddr
	period, delay  time.Duration
}

// check validates the options as a whole, as the original does after getopt, with one sentence per problem.
func (o *options) check() (resolved, error) {
	var r resolved
	var errs []error
	if o.family == 0 {
		errs = append(errs, errors.New("select one of -4 or -6"))
	}
	if o.macSrc == "" || o.macDst == "" || o.saddr == "" || o.daddr == "" {
		errs = append(errs, errors.New("all MAC and IP addresses must be set: -m, -M, -S and -D"))
	}
	if o.ifname == "" || len(o.ifname) >= 16 || strings.ContainsAny(o.ifname, "/ \t") {
		errs = append(errs, fmt.Errorf("-i %q is not an interface name: give one of 1 to 15 bytes without '/' or spaces, e.g. eth0", o.ifname))
	}
	if o.port == 0 {
		errs = append(errs, errors.New("no port: pass -p PORT (the original's default of 0 cannot be steered)"))
	}
	if o.rxPolling && o.skipKick {
		errs = append(errs, errors.New("-t and -n conflict: -t polls from a separate thread, -n never polls; pick one"))
	}
	var err error
	for _, a := range []struct {
		opt byte
		s   string
		dst *netip.Addr
	}{{'S', o.saddr, &r.saddr}, {'D', o.daddr, &r.daddr}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = netip.ParseAddr(a.s); err != nil {
			errs = append(errs, fmt.Errorf("-%c %q is not an IP address", a.opt, a.s))
		} else if o.family == 4 && !a.dst.Is4() || o.family == 6 && !a.dst.Is6() {
			errs = append(errs, fmt.Errorf("-%c %s is not an IPv%d address", a.opt, a.s, o.family))
		}
	}
	for _, a := range []struct {
		opt byte
		s   string
		dst *net.HardwareAddr
	}{{'m', o.macSrc, &r.macSrc}, {'M', o.macDst, &r.macDst}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = net.ParseMAC(a.s); err != nil || len(*a.dst) != 6 {
			errs = append(errs, fmt.Errorf("-%c %q is not a MAC address like 02:00:00:00:00:01", a.opt, a.s))
		}
	}
	if r.period, err = parseNs('P', o.period); err != nil {
		errs = append(errs, err)
	}
	unit := time.Nanosecond
	if o.server {
		unit = time.Microsecond // the server usleep()s -d microseconds
	}
	if r.delay, err = parseDuration('d', o.delay, unit); err != nil {
		errs = append(errs, err)
	}
	if o.server && o.threaded {
		errs = append(errs, errors.New("-T applies to the client: drop it or drop -h"))
	}
	if o.intervals > 0 && o.server {
		errs = append(errs, errors.New("--intervals applies to the client: drop it or drop -h"))
	}
	if o.replyWait > 0 && o.server {
		errs = append(errs, errors.New("--reply-wait applies to the client: drop it or drop -h"))
	}
	if o.threaded && r.period == 0 {
		errs = append(errs, errors.New("-T needs an open-loop period: add -P NS"))
	}
	return r, errors.Join(errs...)
}

// untilStopped is the client's run length: the original measures until SIGINT or SIGTERM, and the engine wants
// an end, so the run is given a century.
const untilStopped = 100 * 365 * 24 * time.Hour

// ringEntries is the original's size of every ring (UMEM_QLEN): the fill and RX rings hold 4096 frames.
const ringEntries = 4096

// engine is what the options map onto: one option set per rr operation.
type engine struct {
	link rr.LinkOptions
	th   rr.Threads
	load rr.Workload // the client's
	svc  rr.Service  // the server's
}

// validate checks the option sets of the role and names problems by xsk_rr's own flags.
func (e engine) validate(server bool) error {
	errs := []error{e.link.Validate(), e.th.Validate()}
	if server {
		errs = append(errs, e.svc.Validate())
	} else {
		errs = append(errs, e.load.Validate())
	}
	return kernel.RenameFields(errors.Join(errs...), flagOf)
}

// flagOf names the engine's fields by the options that set them.
var flagOf = map[string]string{"dev": "-i", "port": "-p", "payload": "-B", "period": "-P", "outstanding": "-o",
	"delay": "-d", "interval": "-l", "cpu": "-C", "local-mac": "-S", "peer-mac": "-M", "local-ip": "-s"}

// params maps checked options onto the engine: the original's datapath is copy mode on queue 0 with a kick after
// every transmit (RFC v2 binds without need_wakeup), a natively attached steering program, and the all-'a'
// payload matched first-in-first-out.
func (o *options) params(r resolved) engine {
	var e engine
	e.link = rr.DefaultLink(o.ifname)
	e.link.Queue, e.link.Port = 0, uint16(o.port)
	e.link.LocalMAC, e.link.PeerMAC, e.link.LocalIP, e.link.PeerIP = r.macSrc, r.macDst, r.saddr, r.daddr
	e.link.Bind, e.link.NeedWakeup, e.link.XDPMode, e.link.Ring = rr.BindCopy, false, "native", ringEntries
	e.th = rr.DefaultThreads()
	switch {
	case o.rxPolling:
		e.th.Poll = rr.PollSeparate
	case o.skipKick:
		e.th.Poll = rr.PollNone
	default:
		e.th.Poll = rr.PollInline
	}
	if o.server {
		// The original usleep()s between request and reply.
		e.svc = rr.Service{Payload: o.payload, Format: rr.FormatXskRR, Verify: o.verify, Reply: rr.ReplyTemplate,
			Delay: r.delay, DelaySleeps: true}
		return e
	}
	w := rr.DefaultWorkload()
	w.Payload, w.Format, w.Verify, w.Delay = o.payload, rr.FormatXskRR, o.verify, r.delay
	w.Interval = time.Duration(o.logInterval) * time.Second
	w.Period, w.Warmup, w.Duration, w.Count = r.period, 0, untilStopped, 0
	if o.intervals > 0 {
		w.Duration = time.Duration(o.intervals) * w.Interval
	}
	if o.replyWait > 0 {
		w.Timeout = o.replyWait
	}
	e.th.Sender, w.Outstanding = rr.SenderInline, 0
	if o.threaded {
		e.th.Sender = rr.SenderThread
	}
	if w.Period == 0 {
		// The original sends -o requests, then one more before each blocking receive: -o + 1 in flight.
		w.Outstanding = o.outstanding + 1
	}
	e.load = w
	return e
}

// warnings are what the original would have done silently.
func (o *options) warnings() []string {
	var w []string
	if o.payloadAsk > 0 {
		w = append(w, fmt.Sprintf("-B %d is above the original's maximum: the payload is capped at %d bytes, as the original caps it",
			o.payloadAsk, maxPayloadOriginal))
	}
	if o.server && o.period != "" {
		w = append(w, "-P applies to the client: the server ignores it, as the original does")
	}
	return w
}

package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/napilab/napilab/internal/rr"
)

// The cover letter's commands, verbatim apart from the placeholders.
var (
	coverServer = strings.Fields("-o 0 -B 400 -i eth0 -4 -D 10.0.0.1 -S 10.0.0.2 -M 02:00:00:00:00:01 -m 02:00:00:00:00:02 -p 54321 -h -v")
	coverClient = strings.Fields("-o 0 -B 400 -i eth0 -4 -S 10.0.0.1 -D 10.0.0.2 -m 02:00:00:00:00:01 -M 02:00:00:00:00:02 -p 54321 -P 80000 -d 30000 -T -l 1 -v -t")
)

func TestCoverLetterCommands(t *testing.T) {
	o, err := parseArgs(coverServer)
	if err != nil {
		t.Fatal(err)
	}
	if !o.server || !o.verify || o.payload != 400 || o.family != 4 || o.port != 54321 || o.outstanding != 0 {
		t.Fatalf("server options %+v", o)
	}
	if _, err := o.check(); err != nil {
		t.Fatal(err)
	}
	o, err = parseArgs(coverClient)
	if err != nil {
		t.Fatal(err)
	}
	r, err := o.check()
	if err != nil {
		t.Fatal(err)
	}
	if r.period != 80*time.Microsecond || r.delay != 30*time.Microsecond || !o.threaded || !o.rxPolling {
		t.Fatalf("client resolved %+v options %+v", r, o)
	}
}

func TestGetoptForms(t *testing.T) {
	o, err := parseArgs([]string{"-hvn4", "-B400", "-p", "9", "-ilo", "-P80us"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.server || !o.verify || !o.skipKick || o.family != 4 || o.payload != 400 || o.port != 9 || o.ifname != "lo" || o.period != "80us" {
		t.Fatalf("grouped options parsed as %+v", o)
	}
	if o, _ := parseArgs([]string{"-B", "5000"}); o.payload != maxPayloadOriginal || o.payloadAsk != 5000 {
		t.Fatalf("-B 5000 not capped like the original: %+v", o)
	}
}

func TestServerDelayIsMicroseconds(t *testing.T) {
	o, _ := parseArgs(append(append([]string{}, coverServer...), "-d", "5"))
	r, err := o.check()
	if err != nil || r.delay != 5*time.Microsecond {
		t.Fatalf("server -d 5 = %v, %v; want 5µs", r.delay, err)
	}
}

// addrs are the mandatory options of a valid IPv4 command line, for tests that vary the rest.
var addrs = []string{"-4", "-p", "1", "-S", "10.0.0.3", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}

func with(extra ...string) []string { return append(append([]string{}, addrs...), extra...) }

// TestBadInput: every flag's malformed values, and every conflict, give one sentence that names the option and
// the fix; parse errors stop at the first problem as getopt does, the checks report every problem at once.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-x"}, "unknown option -x"},
		{[]string{"-hx"}, "unknown option -x"},
		{[]string{"--bogus"}, "unexpected argument \"--bogus\""},
		{[]string{"stray"}, "unexpected argument"},
		{[]string{"-4", "--", "stray"}, "unexpected argument \"stray\""},
		{[]string{"-B"}, "-B needs a value"},
		{[]string{"-B", "abc"}, "-B \"abc\": want a whole number from 1"},
		{[]string{"-B", "0"}, "-B \"0\": want a whole number from 1"},
		{[]string{"-B", "-5"}, "-B \"-5\": want a whole number"},
		{[]string{"-D"}, "-D needs a value"},
		{[]string{"-d"}, "-d needs a value"},
		{[]string{"-i"}, "-i needs a value"},
		{[]string{"-l", "0"}, "-l \"0\": want a whole number from 1 to 86400"},
		{[]string{"-l", "1s"}, "-l \"1s\": want a whole number"},
		{[]string{"-l", "-1"}, "-l \"-1\": want a whole number"},
		{[]string{"-m"}, "-m needs a value"},
		{[]string{"-M"}, "-M needs a value"},
		{[]string{"-o", "-1"}, "-o \"-1\": want a whole number from 0"},
		{[]string{"-o", "many"}, "-o \"many\": want a whole number"},
		{[]string{"-p", "0"}, "-p \"0\": want a whole number from 1 to 65535"},
		{[]string{"-p", "70000"}, "-p \"70000\": want a whole number from 1 to 65535"},
		{[]string{"-p", "http"}, "-p \"http\": want a whole number"},
		{[]string{"-P"}, "-P needs a value"},
		{[]string{"-S"}, "-S needs a value"},
		{[]string{"--intervals"}, "option --intervals needs a value"},
		{[]string{"--reply-wait"}, "option --reply-wait needs a value"},
		{[]string{"--reply-wait", "0s"}, "--reply-wait \"0s\": want a positive duration"},
		{[]string{"--reply-wait", "long"}, "--reply-wait \"long\": want a positive duration"},
		{[]string{"--intervals", "0"}, "--intervals \"0\": want a whole number from 1"},
		{[]string{"--intervals", "two"}, "--intervals \"two\": want a whole number"},
	} {
		if _, err := parseArgs(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseArgs(%q) = %v; want %q", tc.args, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "1"}, "select one of -4 or -6"},
		{[]string{"-4", "-p", "1"}, "all MAC and IP addresses must be set: -m, -M, -S and -D"},
		{[]string{"-4", "-p", "1", "-S", "10.0.0.1", "-D", "10.0.0.2", "-m", "02:00:00:00:00:01"}, "all MAC and IP addresses"},
		{append(append([]string{}, coverClient...), "-n"), "-t and -n conflict"},
		{[]string{"-4", "-p", "1", "-S", "fd00::1", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}, "-S fd00::1 is not an IPv4 address"},
		{[]string{"-6", "-p", "1", "-S", "fd00::1", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}, "-D 10.0.0.1 is not an IPv6 address"},
		{[]string{"-4", "-p", "1", "-S", "10.0.0.300", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}, "-S \"10.0.0.300\" is not an IP address"},
		{[]string{"-4", "-p", "1", "-S", "10.0.0.3", "-D", "server", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}, "-D \"server\" is not an IP address"},
		{[]string{"-4", "-p", "1", "-S", "10.0.0.3", "-D", "10.0.0.1", "-m", "02:00:00:00:01", "-M", "02:00:00:00:00:02"}, "-m \"02:00:00:00:01\" is not a MAC address"},
		{[]string{"-4", "-p", "1", "-S", "10.0.0.3", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}, "-M \"00:00:00:00:fe:80"},
		{[]string{"-4", "-S", "10.0.0.3", "-D", "10.0.0.1", "-m", "02:00:00:00:00:01", "-M", "02:00:00:00:00:02"}, "no port: pass -p PORT"},
		{with("-P", "soon"), "-P \"soon\": want a number (nanoseconds) or a duration like 80us"},
		{with("-P", "-80000"), "-P \"-80000\": must not be negative"},
		{with("-P", "-80us"), "-P \"-80us\": want a number"},
		{with("-d", "later"), "-d \"later\": want a number (nanoseconds)"},
		{with("-h", "-d", "later"), "-d \"later\": want a number (microseconds)"},
		{with("-d", "-1"), "-d \"-1\": must not be negative"},
		{with("-T"), "-T needs an open-loop period: add -P NS"},
		{with("-T", "-P", "0"), "-T needs an open-loop period"},
		{with("-T", "-h", "-P", "80000"), "-T applies to the client"},
		{with("-t", "-n", "-h"), "-t and -n conflict"},
		{with("-h", "--intervals", "3"), "--intervals applies to the client"},
		{with("-h", "--reply-wait", "3s"), "--reply-wait applies to the client"},
		{with("-i", ""), "-i \"\" is not an interface name"},
		{with("-i", "a-name-far-too-long"), "is not an interface name: give one of 1 to 15 bytes"},
		{with("-i", "../etc"), "is not an interface name"},
	} {
		o, err := parseArgs(tc.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tc.args, err)
			continue
		}
		if _, err := o.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check(%q) = %v; want %q", tc.args, err, tc.want)
		}
	}
}

// TestEveryProblemAtOnce: the checks list every problem, one sentence per line, so one run shows all fixes.
func TestEveryProblemAtOnce(t *testing.T) {
	o, err := parseArgs([]string{"-t", "-n", "-T"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.check()
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{"select one of -4 or -6", "all MAC and IP", "no port", "-t and -n conflict", "-T needs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %q", want, err)
		}
	}
	if len(lines) != 5 {
		t.Errorf("%d lines, want one per problem: %q", len(lines), lines)
	}
}

// TestPayloadCapWarns: -B above the original's 1024 is capped as the original caps it, and said so.
func TestPayloadCapWarns(t *testing.T) {
	o, err := parseArgs(with("-B", "1500"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := o.check()
	if err != nil {
		t.Fatal(err)
	}
	if e := o.params(r); e.load.Payload != 1024 {
		t.Fatalf("payload %d, want the original's cap of 1024", e.load.Payload)
	}
	w := o.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "-B 1500") || !strings.Contains(w[0], "capped at 1024") {
		t.Fatalf("warnings %q", w)
	}
	if o, _ := parseArgs(with("-B", "1024")); len(o.warnings()) != 0 {
		t.Fatalf("-B 1024 warned: %q", o.warnings())
	}
}

// TestParamsCoverLetter: the cover letter's commands map onto the engine as the original behaves: copy mode
// on queue 0 with a kick after every send, native XDP, 4096-entry rings, the xsk_rr payload, template replies
// addressed from the server's own options, ns on the client and a sleeping µs delay on the server.
func TestParamsCoverLetter(t *testing.T) {
	o, _ := parseArgs(coverClient)
	r, err := o.check()
	if err != nil {
		t.Fatal(err)
	}
	c := o.params(r)
	if err := c.validate(false); err != nil {
		t.Fatal(err)
	}
	want := engine{link: rr.DefaultLink("eth0"), load: rr.DefaultWorkload(),
		th: rr.Threads{Sender: rr.SenderThread, Poll: rr.PollSeparate}}
	want.link.LocalMAC, want.link.PeerMAC = r.macSrc, r.macDst
	want.link.LocalIP, want.link.PeerIP = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	want.link.Bind, want.link.NeedWakeup, want.link.XDPMode, want.link.Ring = rr.BindCopy, false, "native", 4096
	want.load.Payload, want.load.Format, want.load.Verify = 400, rr.FormatXskRR, true
	want.load.Period, want.load.Delay = 80*time.Microsecond, 30*time.Microsecond
	want.load.Interval, want.load.Warmup, want.load.Duration, want.load.Outstanding = time.Second, 0, untilStopped, 0
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(engine{}), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Fatalf("client params (-want +got):\n%s", diff)
	}

	o, _ = parseArgs(append(append([]string{}, coverServer...), "-d", "5"))
	if r, err = o.check(); err != nil {
		t.Fatal(err)
	}
	s := o.params(r)
	if err := s.validate(true); err != nil {
		t.Fatal(err)
	}
	if s.svc.Reply != rr.ReplyTemplate || !s.svc.DelaySleeps || s.svc.Delay != 5*time.Microsecond ||
		s.link.LocalIP.String() != "10.0.0.2" || s.link.PeerIP.String() != "10.0.0.1" ||
		s.link.PeerMAC.String() != "02:00:00:00:00:01" || s.th.Poll != rr.PollInline || s.link.Bind != rr.BindCopy ||
		s.link.NeedWakeup || s.svc.Format != rr.FormatXskRR {
		t.Fatalf("server params %+v", s)
	}
}

// TestParamsLoops: -o N keeps N+1 in flight in the closed loop (N up front, one more before each receive);
// -P makes it open loop and -o is ignored; -n and -t choose the poll driver.
func TestParamsLoops(t *testing.T) {
	for _, tc := range []struct {
		extra       []string
		outstanding int
		period      time.Duration
		poll        rr.PollDriver
		sender      rr.SenderPlacement
	}{
		{nil, 2, 0, rr.PollInline, rr.SenderInline},
		{[]string{"-o", "0"}, 1, 0, rr.PollInline, rr.SenderInline},
		{[]string{"-o", "7", "-n"}, 8, 0, rr.PollNone, rr.SenderInline},
		{[]string{"-o", "7", "-P", "80000"}, 0, 80 * time.Microsecond, rr.PollInline, rr.SenderInline},
		{[]string{"-P", "8us", "-T", "-t"}, 0, 8 * time.Microsecond, rr.PollSeparate, rr.SenderThread},
	} {
		o, err := parseArgs(with(tc.extra...))
		if err != nil {
			t.Fatal(err)
		}
		r, err := o.check()
		if err != nil {
			t.Fatal(err)
		}
		e := o.params(r)
		if err := e.validate(false); err != nil {
			t.Errorf("%q: %v", tc.extra, err)
		}
		if e.load.Outstanding != tc.outstanding || e.load.Period != tc.period || e.th.Poll != tc.poll ||
			e.th.Sender != tc.sender {
			t.Errorf("%q: outstanding %d period %v poll %s sender %s; want %d %v %s %s", tc.extra,
				e.load.Outstanding, e.load.Period, e.th.Poll, e.th.Sender, tc.outstanding, tc.period, tc.poll, tc.sender)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add(strings.Join(coverClient, "\x00"))
	f.Add("-hvn4\x00-B400")
	// Whatever the options accept, the engine must accept too: a command line never passes the checks and then
	// fails deeper down with an engine message that names none of xsk_rr's options.
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		o, err := parseArgs(args)
		if err != nil {
			return
		}
		r, err := o.check()
		if err != nil {
			return
		}
		if err := o.params(r).validate(o.server); err != nil {
			t.Fatalf("options %q pass the checks but the engine refuses them: %v", args, err)
		}
	})
}

// TestIntervalsBoundsTheRun: the hidden --intervals N turns the century-long run into N report intervals.
func TestIntervalsBoundsTheRun(t *testing.T) {
	o, err := parseArgs(with("-P", "2ms", "-l", "2", "--intervals", "3"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := o.check()
	if err != nil {
		t.Fatal(err)
	}
	if e := o.params(r); e.load.Duration != 6*time.Second || e.load.Interval != 2*time.Second || e.validate(false) != nil {
		t.Fatalf("duration %v interval %v: want 6s of 2s intervals", e.load.Duration, e.load.Interval)
	}
	if strings.Contains(usage, "--intervals") {
		t.Fatal("--intervals is meant to stay out of --help")
	}
}

// TestReplyWait: the hidden --reply-wait replaces the client's 1 s wait for late replies; without it the
// original's second stays.
func TestReplyWait(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{{with("-P", "2ms"), time.Second}, {with("-P", "2ms", "--reply-wait", "30s"), 30 * time.Second}} {
		o, err := parseArgs(c.args)
		if err != nil {
			t.Fatal(err)
		}
		r, err := o.check()
		if err != nil {
			t.Fatal(err)
		}
		if e := o.params(r); e.load.Timeout != c.want || e.validate(false) != nil {
			t.Errorf("%q: reply timeout %v, want %v", c.args, e.load.Timeout, c.want)
		}
	}
	if strings.Contains(usage, "--reply-wait") {
		t.Fatal("--reply-wait is meant to stay out of --help")
	}
}

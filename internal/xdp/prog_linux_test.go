package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testenv"
)

const testPort = 54321

// frame describes a test frame; zero fields take the values of a well-formed UDP datagram to testPort.
type frame struct {
	tags      []uint16 // TPIDs of VLAN tags, outermost first
	etherType uint16   // default: IPv4 or IPv6 by v6
	v6        bool
	version   uint8 // IP version nibble; default 4 or 6
	ihl       uint8 // IPv4 header words; default 5
	proto     uint8 // default UDP
	fragField uint16
	hopByHop  bool // IPv6: one hop-by-hop extension header before UDP
	dport     uint16
	cut       int // keep only this many bytes; 0 keeps all
}

func (f frame) bytes() []byte {
	be := binary.BigEndian
	b := make([]byte, 12, 128) // destination and source MAC
	b[0], b[6] = 0x02, 0x02
	for _, tpid := range f.tags {
		b = be.AppendUint16(b, tpid)
		b = be.AppendUint16(b, 7) // VLAN id
	}
	proto := f.proto
	if proto == 0 {
		proto = ipProtoUDP
	}
	dport := f.dport
	if dport == 0 {
		dport = testPort
	}
	udp := be.AppendUint16(nil, 40000)
	udp = be.AppendUint16(udp, dport)
	udp = be.AppendUint16(udp, udpLen+4)
	udp = append(udp, 0, 0, 'p', 'i', 'n', 'g')
	if !f.v6 {
		et, version, ihl := f.etherType, f.version, f.ihl
		if et == 0 {
			et = 0x0800
		}
		if version == 0 {
			version = 4
		}
		if ihl == 0 {
			ihl = 5
		}
		b = be.AppendUint16(b, et)
		ip := make([]byte, max(int(ihl)*4, ipv4MinLen))
		ip[0] = version<<4 | ihl
		be.PutUint16(ip[2:], uint16(len(ip)+len(udp)))
		be.PutUint16(ip[ipv4FragOff:], f.fragField)
		ip[8], ip[ipv4Proto] = 64, proto
		copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
		if ihl < 5 {
			// Where a too-short header would put the UDP destination port, put the port, so a program that
			// accepted the header would steer the frame.
			be.PutUint16(ip[int(ihl)*4+udpDstOff:], dport)
		}
		b = append(append(b, ip...), udp...)
	} else {
		et := f.etherType
		if et == 0 {
			et = 0x86dd
		}
		b = be.AppendUint16(b, et)
		ip := make([]byte, ipv6Len)
		ip[0] = 6 << 4
		next := proto
		var ext []byte
		if f.hopByHop {
			next, ext = 0, []byte{proto, 0, 1, 4, 0, 0, 0, 0} // Pad1/PadN options
		}
		be.PutUint16(ip[4:], uint16(len(ext)+len(udp)))
		ip[ipv6Next], ip[7] = next, 64
		ip[8], ip[23], ip[24], ip[39] = 0xfd, 1, 0xfd, 2
		b = append(append(append(b, ip...), ext...), udp...)
	}
	if f.cut > 0 && f.cut < len(b) {
		b = b[:f.cut]
	}
	return b
}

// steers is the decision the program must make, written plainly in Go: FuzzProgramMatchesGo holds the BPF
// program to it.
func steers(f []byte, port uint16) bool {
	be := binary.BigEndian
	if len(f) < ethLen {
		return false
	}
	l3, et := ethLen, be.Uint16(f[ethTypeOff:])
	if et == 0x8100 || et == 0x88a8 {
		if len(f) < ethLen+vlanLen {
			return false
		}
		l3, et = ethLen+vlanLen, be.Uint16(f[ethTypeOff+vlanLen:])
	}
	var l4 int
	switch et {
	case 0x0800:
		if len(f) < l3+ipv4MinLen || f[l3]>>4 != 4 || f[l3]&0xf < 5 || f[l3+ipv4Proto] != ipProtoUDP ||
			be.Uint16(f[l3+ipv4FragOff:])&0x3fff != 0 {
			return false
		}
		l4 = l3 + int(f[l3]&0xf)*4
	case 0x86dd:
		if len(f) < l3+ipv6Len || f[l3+ipv6Next] != ipProtoUDP {
			return false
		}
		l4 = l3 + ipv6Len
	default:
		return false
	}
	return len(f) >= l4+udpLen && be.Uint16(f[l4+udpDstOff:]) == port
}

// loadForDecisions loads the program with XDP_DROP as the verdict of a steered frame whose queue has no
// socket, so BPF_PROG_TEST_RUN shows the decision without one: DROP = steered, PASS = passed.
func loadForDecisions(tb testing.TB) *Program {
	tb.Helper()
	testenv.RequirePriv(tb)
	p, err := Load(Spec{Port: testPort, Queues: 4, fallback: xdpDrop})
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func run(tb testing.TB, p *Program, f []byte) uint32 {
	tb.Helper()
	ret, err := p.prog.Run(&ebpf.RunOptions{Data: f})
	if err != nil {
		tb.Fatalf("run program on %d bytes: %v", len(f), err)
	}
	return ret
}

func TestProgramDecisions(t *testing.T) {
	testenv.CheckLeaks(t)
	p := loadForDecisions(t)
	full := len(frame{}.bytes())
	for _, tc := range []struct {
		name  string
		f     frame
		steer bool
	}{
		{"ipv4 udp to port", frame{}, true},
		{"ipv4 udp other port", frame{dport: testPort + 1}, false},
		{"ipv4 options", frame{ihl: 7}, true},
		{"ipv4 max header", frame{ihl: 15}, true},
		{"ipv4 tcp", frame{proto: unix.IPPROTO_TCP}, false},
		{"ipv4 icmp", frame{proto: unix.IPPROTO_ICMP}, false},
		{"ipv4 first fragment", frame{fragField: 0x2000}, false},
		{"ipv4 later fragment", frame{fragField: 0x0005}, false},
		{"ipv4 dont fragment", frame{fragField: 0x4000}, true},
		{"ipv4 header length below 5", frame{ihl: 4}, false},
		{"ipv4 wrong version", frame{version: 6}, false},
		{"ipv4 udp header cut", frame{cut: ethLen + ipv4MinLen + udpLen - 1}, false},
		{"ipv4 payload cut", frame{cut: full - 1}, true},
		{"ipv4 header cut", frame{cut: ethLen + 19}, false},
		{"ipv4 options past the end", frame{ihl: 15, cut: ethLen + 60}, false},
		{"ipv4 exactly to the udp header end", frame{cut: ethLen + ipv4MinLen + udpLen}, true},
		{"ipv6 udp to port", frame{v6: true}, true},
		{"ipv6 udp other port", frame{v6: true, dport: 53}, false},
		{"ipv6 icmpv6", frame{v6: true, proto: unix.IPPROTO_ICMPV6}, false},
		{"ipv6 extension header", frame{v6: true, hopByHop: true}, false},
		{"ipv6 udp header cut", frame{v6: true, cut: ethLen + ipv6Len + 7}, false},
		{"ipv6 exactly to the udp header end", frame{v6: true, cut: ethLen + ipv6Len + udpLen}, true},
		{"802.1q ipv4", frame{tags: []uint16{0x8100}}, true},
		{"802.1q ipv6", frame{tags: []uint16{0x8100}, v6: true}, true},
		{"802.1ad ipv4", frame{tags: []uint16{0x88a8}}, true},
		{"802.1q other port", frame{tags: []uint16{0x8100}, dport: 1}, false},
		{"qinq", frame{tags: []uint16{0x88a8, 0x8100}}, false},
		{"vlan tag cut", frame{tags: []uint16{0x8100}, cut: ethLen + 2}, false},
		{"arp", frame{etherType: 0x0806}, false},
		{"ethernet header only", frame{cut: ethLen}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f.bytes()
			if steers(f, testPort) != tc.steer {
				t.Fatalf("the Go reference disagrees with the table for %x", f)
			}
			want := uint32(xdpPass)
			if tc.steer {
				want = xdpDrop
			}
			if got := run(t, p, f); got != want {
				t.Fatalf("verdict %d, want %d (steer=%v) for %x", got, want, tc.steer, f)
			}
		})
	}
}

// FuzzProgramMatchesGo runs arbitrary frames through the loaded BPF program and through steers: any
// disagreement is a bug in one of them.
func FuzzProgramMatchesGo(f *testing.F) {
	for _, fr := range []frame{{}, {v6: true}, {ihl: 6}, {tags: []uint16{0x8100}}, {tags: []uint16{0x88a8}, v6: true},
		{fragField: 0x2000}, {etherType: 0x0806}, {v6: true, hopByHop: true}} {
		f.Add(fr.bytes())
	}
	p := loadForDecisions(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < ethLen || len(b) > 1500 {
			return // BPF_PROG_TEST_RUN takes an Ethernet header at least, and one page at most
		}
		want := uint32(xdpPass)
		if steers(b, testPort) {
			want = xdpDrop
		}
		if got := run(t, p, b); got != want {
			t.Fatalf("program says %d, Go reference %d, for %x", got, want, b)
		}
	})
}

// TestProgramStampsSteeredFrames runs frames through the program as the kernel's test runner gives them: a
// steered frame comes back with the arrival stamp in its metadata area, taken between the moments before and
// after the run on CLOCK_MONOTONIC; a passed frame comes back without metadata; and a program loaded without
// stamping leaves steered frames alone.
func TestProgramStampsSteeredFrames(t *testing.T) {
	testenv.CheckLeaks(t)
	p := loadForDecisions(t)
	for _, f := range []frame{{}, {v6: true}, {tags: []uint16{0x8100}}, {dport: 53}, {etherType: 0x0806}} {
		in := f.bytes()
		out := make([]byte, len(in)+StampLen)
		before := monotonic(t)
		if _, err := p.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out}); err != nil {
			t.Fatal(err)
		}
		after := monotonic(t)
		if !steers(in, testPort) {
			if !bytes.Equal(out[:len(in)], in) {
				t.Errorf("a passed frame came back changed or with metadata: %x", out)
			}
			continue
		}
		ns, ok := TakeStamp(out[:StampLen])
		if !ok || ns < before || ns > after {
			t.Errorf("steered frame: stamp %d, %v; want one between %d and %d", ns, ok, before, after)
		}
		if !bytes.Equal(out[StampLen:], in) {
			t.Errorf("the stamp changed the frame: %x", out[StampLen:])
		}
		if _, again := TakeStamp(out[:StampLen]); again {
			t.Error("TakeStamp left the magic behind: a frame reused without a stamp would read as stamped")
		}
	}
	plain, err := Load(Spec{Port: testPort, fallback: xdpDrop, NoStamp: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	in := frame{}.bytes()
	out := make([]byte, len(in)+StampLen)
	if _, err := plain.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[:len(in)], in) {
		t.Errorf("a program without stamping added metadata: %x", out)
	}
	if n, err := p.StampFailures(); err != nil || n != 0 {
		t.Errorf("StampFailures = %d, %v; the test runner gives every frame a metadata area", n, err)
	}
}

func monotonic(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// TestRealFallbackPasses checks the production program: a steered frame whose queue has no socket passes.
func TestRealFallbackPasses(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	p, err := Load(Spec{Port: testPort})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, f := range []frame{{}, {v6: true}, {dport: 7}} {
		if got := run(t, p, f.bytes()); got != xdpPass {
			t.Errorf("verdict %d without a socket, want XDP_PASS", got)
		}
	}
}

// TestLoadWithoutCapabilities drops CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN on one thread and loads there: the
// error must match os.ErrPermission and say which capabilities to grant, not blame RLIMIT_MEMLOCK.
func TestLoadWithoutCapabilities(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its reduced capabilities
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		for _, c := range []int{unix.CAP_BPF, unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN} {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		p, err := Load(Spec{Port: testPort})
		if err == nil {
			p.Close()
			err = errors.New("loaded without capabilities")
		}
		errc <- err
	}()
	err := <-errc
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_BPF") {
		t.Fatalf("Load without capabilities = %v, want os.ErrPermission naming CAP_BPF", err)
	}
}

// BenchmarkProgram measures the program per frame in the kernel's test runner; "-nostamp" is the program without
// the arrival stamp, so the difference is what stamping costs.
func BenchmarkProgram(b *testing.B) {
	p := loadForDecisions(b)
	plain, err := Load(Spec{Port: testPort, Queues: 4, fallback: xdpDrop, NoStamp: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close() })
	for _, bc := range []struct {
		name string
		f    frame
	}{{"ipv4-steer", frame{}}, {"ipv6-steer", frame{v6: true}}, {"vlan-ipv4-steer", frame{tags: []uint16{0x8100}}},
		{"ipv4-pass", frame{dport: 53}}, {"arp-pass", frame{etherType: 0x0806}}, {"ipv4-steer-nostamp", frame{}}} {
		prog := p.prog
		if strings.HasSuffix(bc.name, "-nostamp") {
			prog = plain.prog
		}
		b.Run(bc.name, func(b *testing.B) {
			ret, per, err := prog.Benchmark(bc.f.bytes(), b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			if (ret == xdpDrop) != steers(bc.f.bytes(), testPort) {
				b.Fatalf("verdict %d", ret)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "kernel-ns/frame")
		})
	}
}

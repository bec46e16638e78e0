package rr

import (
	"net/netip"
	"testing"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// serverUnderTest is a server on an in-memory pair whose answer step is driven one request at a time.
type serverUnderTest struct {
	pair *xsktest.Pair
	srv  *Server
	addr uint64 // the receive frame requests are written into
}

func newServerUnderTest(t *testing.T, svc Service, o ServerOptions) *serverUnderTest {
	t.Helper()
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pair.Close() })
	srv, err := NewServer(pair.B, svc, DefaultThreads(), o)
	if err != nil {
		t.Fatal(err)
	}
	pair.A.FillAll(pair.A.FramePool(0, pair.A.Config().FillSize))
	return &serverUnderTest{pair: pair, srv: srv, addr: srv.sock.FrameAddr(0) + xsk.XDPPacketHeadroom}
}

// answer hands req to the server's answer step, without an arrival stamp, and returns whether it replied, and
// the reply as the other end of the pair receives it.
func (u *serverUnderTest) answer(t *testing.T, req []byte) (bool, []byte) {
	t.Helper()
	return u.answerStamped(t, req, -1, 0)
}

// answerStamped is answer for a request the XDP program stamped at arrived (none when negative) and the server
// took off the RX ring at taken.
func (u *serverUnderTest) answerStamped(t *testing.T, req []byte, arrived, taken int64) (bool, []byte) {
	t.Helper()
	copy(u.srv.sock.Frame(u.addr, uint32(len(req))), req)
	if arrived >= 0 {
		xdp.PutStamp(u.srv.sock.Frame(u.addr-xdp.StampLen, xdp.StampLen), arrived)
	}
	tx := u.srv.sock.TX()
	if tx.Reserve(1) != 1 {
		t.Fatal("no TX slot")
	}
	if !u.srv.answer(xsk.Desc{Addr: u.addr, Len: uint32(len(req))}, 0, taken) {
		tx.Cancel(1)
		return false, nil
	}
	tx.Submit(1)
	u.pair.Pump()
	rx := u.pair.A.RX()
	if rx.Peek(1) != 1 {
		t.Fatal("the reply did not arrive")
	}
	d := rx.Get(0)
	reply := append([]byte(nil), u.pair.A.Frame(d.Addr, d.Len)...)
	rx.Release(1)
	return true, reply
}

// request builds a napilab request from client to server with payload bytes.
func request(t *testing.T, client, server frame.Endpoint, payload int) []byte {
	t.Helper()
	s := frame.Spec{Src: client, Dst: server, PayloadLen: payload}
	b := make([]byte, s.FrameLen())
	FillPad(b[s.PayloadOffset():])
	if payload >= HeaderLen {
		PutHeader(b[s.PayloadOffset():], Header{Run: 1, Seq: 2, Scheduled: 3, Sent: 4})
	}
	if _, err := frame.Build(b, s); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, b []byte) frame.Packet {
	t.Helper()
	p, err := frame.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServerRefusesByReason: each kind of bad request is refused, counted under its own reason and nothing
// else, and never answered; a good one is answered with a reply that is valid on the wire.
func TestServerRefusesByReason(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		ce, se := endpoints(v6)
		svc := DefaultService()
		svc.Verify = true
		for _, c := range []struct {
			name   string
			policy frame.ChecksumPolicy
			req    func(t *testing.T) []byte
			count  func(*ServerStats) uint64 // nil: answered
		}{
			{"good", frame.KeepChecksums, func(t *testing.T) []byte { return request(t, ce, se, 200) }, nil},
			{"not a frame", frame.KeepChecksums, func(t *testing.T) []byte { return []byte("garbage, not even Ethernet") },
				func(s *ServerStats) uint64 { return s.Malformed }},
			{"other port", frame.KeepChecksums, func(t *testing.T) []byte {
				other := se
				other.Port++
				return request(t, ce, other, 200)
			}, func(s *ServerStats) uint64 { return s.OtherPort }},
			{"shorter than the header", frame.KeepChecksums, func(t *testing.T) []byte { return request(t, ce, se, HeaderLen-1) },
				func(s *ServerStats) uint64 { return s.Short }},
			{"empty payload", frame.KeepChecksums, func(t *testing.T) []byte { return request(t, ce, se, 0) },
				func(s *ServerStats) uint64 { return s.Short }},
			{"another size under verify", frame.KeepChecksums, func(t *testing.T) []byte { return request(t, ce, se, 300) },
				func(s *ServerStats) uint64 { return s.BadSize }},
			{"broadcast", frame.KeepChecksums, func(t *testing.T) []byte {
				b := se
				b.MAC = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
				return request(t, ce, b, 200)
			}, func(s *ServerStats) uint64 { return s.BadAddress }},
			{"for another MAC", frame.KeepChecksums, func(t *testing.T) []byte {
				o := se
				o.MAC[5]++
				return request(t, ce, o, 200)
			}, func(s *ServerStats) uint64 { return s.BadAddress }},
			{"from a multicast source", frame.KeepChecksums, func(t *testing.T) []byte {
				m := ce
				m.IP = netip.MustParseAddr("239.0.0.1")
				if v6 {
					m.IP = netip.MustParseAddr("ff02::1")
				}
				return request(t, m, se, 200)
			}, func(s *ServerStats) uint64 { return s.BadAddress }},
			{"from itself", frame.KeepChecksums, func(t *testing.T) []byte {
				me := se
				me.MAC = ce.MAC
				return request(t, me, se, 200)
			}, func(s *ServerStats) uint64 { return s.BadAddress }},
			{"corrupted payload", frame.KeepChecksums, func(t *testing.T) []byte {
				b := request(t, ce, se, 200)
				b[len(b)-3] ^= 0x10
				return b
			}, func(s *ServerStats) uint64 { return s.BadChecksum }},
			{"partial checksum kept", frame.KeepChecksums, func(t *testing.T) []byte { return partialSum(t, request(t, ce, se, 200)) },
				func(s *ServerStats) uint64 { return s.PartialChecksum }},
			{"partial checksum recomputed", frame.RecomputeChecksums, func(t *testing.T) []byte {
				return partialSum(t, request(t, ce, se, 200))
			}, nil},
			{"bad payload", frame.KeepChecksums, func(t *testing.T) []byte {
				b := request(t, ce, se, 200)
				p := mustParse(t, b)
				if err := p.WritePayload(HeaderLen+5, []byte("b")); err != nil { // checksum stays valid
					t.Fatal(err)
				}
				return b
			}, func(s *ServerStats) uint64 { return s.BadPayload }},
		} {
			t.Run(c.name+map[bool]string{false: "/IPv4", true: "/IPv6"}[v6], func(t *testing.T) {
				u := newServerUnderTest(t, svc, ServerOptions{Local: se, Checksums: c.policy})
				req := c.req(t)
				ok, reply := u.answer(t, req)
				st := u.srv.st
				if c.count == nil {
					if !ok || st.Refused() != 0 {
						t.Fatalf("a good request was refused: %+v", st)
					}
					p := mustParse(t, reply)
					if err := p.VerifyChecksums(); err != nil {
						t.Fatalf("the reply does not verify: %v", err)
					}
					if p.Ethernet().Src() != se.MAC || p.Ethernet().Dst() != ce.MAC || p.UDP().DstPort() != ce.Port {
						t.Fatalf("the reply goes from %v to %v port %d", p.Ethernet().Src(), p.Ethernet().Dst(),
							p.UDP().DstPort())
					}
					return
				}
				if ok || st.Replied != 0 {
					t.Fatal("a bad request was answered")
				}
				if c.count(&st) != 1 || st.Refused() != 1 {
					t.Fatalf("counted %+v; want exactly one refusal under its own reason", st)
				}
			})
		}
	}
}

// partialSum gives b the UDP checksum a veth peer's kernel stack sends: the pseudo-header sum.
func partialSum(t *testing.T, b []byte) []byte {
	t.Helper()
	p := mustParse(t, b)
	var pseudo []byte
	udpLen := len(p.UDP())
	if ip := p.IPv4(); ip != nil {
		pseudo = append(append([]byte{}, ip[12:20]...), 0, frame.ProtocolUDP, byte(udpLen>>8), byte(udpLen))
	} else {
		ip := p.IPv6()
		pseudo = append(append([]byte{}, ip[8:40]...), 0, 0, byte(udpLen>>8), byte(udpLen), 0, 0, 0, frame.ProtocolUDP)
	}
	p.UDP().SetChecksum(frame.Checksum(pseudo, 0))
	return b
}

// TestServerTemplateChecks: template replies check the request's checksums too, and a template whose ends
// cannot carry a reply is refused when the server is made.
func TestServerTemplateChecks(t *testing.T) {
	ce, se := endpoints(false)
	svc := DefaultService()
	svc.Reply = ReplyTemplate
	u := newServerUnderTest(t, svc, ServerOptions{Local: se, Peer: ce})
	if ok, reply := u.answer(t, request(t, ce, se, 200)); !ok || mustParse(t, reply).VerifyChecksums() != nil {
		t.Fatal("a good request got no valid template reply")
	}
	bad := request(t, ce, se, 200)
	bad[len(bad)-1] ^= 1
	if ok, _ := u.answer(t, bad); ok || u.srv.st.BadChecksum != 1 {
		t.Fatalf("a corrupted request was answered from the template: %+v", u.srv.st)
	}

	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	bcast := ce
	bcast.MAC = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if _, err := NewServer(pair.B, svc, DefaultThreads(), ServerOptions{Local: se, Peer: bcast}); err == nil {
		t.Fatal("a template reply to a broadcast MAC was accepted")
	}
}

// TestServerWritesQueueing: a stamped napilab request gets its queueing time, from the arrival stamp to the
// moment the server took it, written into its reply, echoed or from the template, with checksums that still
// verify; an unstamped one keeps "not queued"; the stamp is erased once read, so a frame that comes back without
// one is not read as stamped again; xsk_rr payloads are left alone but their queueing is counted all the same.
func TestServerWritesQueueing(t *testing.T) {
	ce, se := endpoints(false)
	for _, reply := range []ReplyStyle{ReplyEcho, ReplyTemplate} {
		for _, format := range []Format{FormatNapilab, FormatXskRR} {
			t.Run(string(reply)+"/"+string(format), func(t *testing.T) {
				svc := DefaultService()
				svc.Reply, svc.Format = reply, format
				u := newServerUnderTest(t, svc, ServerOptions{Local: se, Peer: ce})
				req := request(t, ce, se, 200)
				if format == FormatXskRR {
					FillPad(mustParse(t, req).Payload()) // checksums are not the point here
					p := mustParse(t, req)
					p.UDP().SetChecksum(0)
				} else {
					p := mustParse(t, req)
					var q [8]byte
					PutQueueing(&q, NotQueued)
					if err := p.WritePayload(QueueingOffset, q[:]); err != nil {
						t.Fatal(err)
					}
				}
				for _, c := range []struct {
					arrived, taken, want int64
				}{{1_000_000, 1_000_800, 800}, {-1, 2_000_000, NotQueued}, {5_000, 5_000, 0}} {
					ok, out := u.answerStamped(t, req, c.arrived, c.taken)
					if !ok {
						t.Fatalf("refused: %+v", u.srv.st)
					}
					p := mustParse(t, out)
					if err := p.VerifyChecksums(); err != nil {
						t.Fatalf("reply checksums: %v", err)
					}
					if format == FormatXskRR {
						if CheckPad(p.Payload()) != nil {
							t.Fatalf("the server wrote into an xsk_rr payload: %q", p.Payload())
						}
						continue
					}
					h, err := ParseHeader(p.Payload())
					if err != nil || h.Queueing != c.want || h.Run != 1 || h.Seq != 2 {
						t.Fatalf("stamp %d taken %d: reply header %+v, %v; want queueing %d and the request's identity",
							c.arrived, c.taken, h, err, c.want)
					}
				}
				if u.srv.st.Stamped != 2 || u.srv.queue.Count() != 2 || u.srv.queue.Max() != 800 {
					t.Fatalf("stamped %d, queueing recorded %d (max %d); want 2 and 800 ns at most", u.srv.st.Stamped,
						u.srv.queue.Count(), u.srv.queue.Max())
				}
				if _, ok := xdp.TakeStamp(u.srv.sock.Frame(u.addr-xdp.StampLen, xdp.StampLen)); ok {
					t.Fatal("the stamp is still in front of the frame after the server read it")
				}
			})
		}
	}
}

// Package xdp is napilab's steering program: an XDP program that hands the benchmark's UDP traffic to AF_XDP
// sockets and passes everything else to the network stack.
//
// The kernel model. XDP runs a BPF program on every frame a device receives, before the stack allocates an skb:
// in the driver (native mode) or, for any device, early in the stack on the skb (generic mode, slower). The
// program returns a verdict; XDP_REDIRECT through an XSKMAP delivers the frame to the AF_XDP socket stored at a
// key. An AF_XDP socket is bound to one (device, rx queue), so the program looks up the socket of the queue the
// frame arrived on, bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS): a queue without a socket falls back to
// passing the frame. The program is attached through a bpf_link, which the kernel removes when its last file
// descriptor closes, so a crash, SIGKILL or SIGTERM leaves nothing attached; a program attached the legacy way
// (netlink IFLA_XDP, `ip link set xdp`) would outlive its process, so napilab never does that.
//
// What is steered: UDP datagrams to Spec.Port over IPv4 (any header length; fragments pass, since only the stack
// can reassemble them) and IPv6 (UDP directly after the fixed header; extension headers pass), untagged or with one
// 802.1Q or 802.1ad VLAN tag in the frame; the socket then receives the tag too. Most NICs strip the outer tag
// before XDP runs (rx-vlan-offload), so in practice tags reach the program on software devices or with offload off;
// steering them keeps benchmark traffic on a VLAN from silently taking the stack path. Everything else passes:
// other ports, other protocols, ARP, ICMP and ICMPv6 (neighbour discovery keeps working), QinQ, and frames too short
// for the headers they announce. Every header access is bounds-checked against data_end for the verifier.
//
// Before steering a frame the program stamps it with the time it ran (CLOCK_MONOTONIC) in the frame's XDP
// metadata area, which reaches the socket's UMEM in front of the frame in copy mode and zero copy alike: the
// application that takes the frame off its RX ring learns how long it waited there (see StampLen for where the
// moment lies on each kind of device, and what a driver without metadata support gets). Stamping costs about 40
// ns per steered frame in the kernel's test runner on a 2-vCPU VM (BenchmarkProgram).
//
// The program is about seventy-five instructions written with cilium/ebpf's asm package, so building napilab needs no
// clang; cilium/ebpf loads it, creates the XSKMAP and attaches the link. Only the attach policy, the error
// sentences and the query of what is attached (rtnetlink IFLA_XDP, which also sees legacy attachments that bpf
// link listings do not) are written here.
package xdp

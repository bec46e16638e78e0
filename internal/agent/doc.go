// Package agent runs napilab's side of a sweep on another host, driven over the user's own ssh.
//
// # Why an agent, and why this way
//
// A sweep between two hosts changes the server host's NIC (NAPI settings, busy-poll sysctls, kthread
// scheduling) for every mode, runs the AF_XDP server there, and must put everything back — also when the
// controlling laptop dies, or the network between them goes silent. Every peer tool with a control daemon
// (netperf, neper, uperf, fio) listens on a port without authentication; iperf3's own authentication has had
// CVEs. napilab listens on nothing: `napilab agent --stdio` is started through ssh (so ~/.ssh/config, agents,
// certificates, ProxyJump and ControlMaster all apply) and speaks on its standard input and output.
//
// # The protocol
//
// JSON lines, one message per line, at most MaxLine bytes. The agent speaks first: a Magic line with the
// protocol version, napilab's version and the sha256 of its executable; anything a remote shell printed before
// it is an error that quotes it. Then the controller sends Requests (IDs counting up from 1 without gaps) and
// waits for each Response before the next. The first request is hello, which must name the same protocol
// and napilab version, and which locks the device and restores journals that dead holders left behind. A
// message that does not decode, is too long, comes out of order or breaks the order of operations ends the
// session, with a protocol error sent first; nothing is applied by a broken session, and what it had applied
// is restored. While a cell measures, the channel is quiet: server-start answers once the server polls, and
// nothing is said until server-stop.
//
// # What is restored, and when
//
// A mode is applied under a lease (napi.Hold). The agent restores on the first of: bye; the end of its input
// (the controller or its ssh died); the lease running out without a renewal (a partition); SIGTERM, SIGINT or
// SIGHUP. A watchdog process started at apply (`napilab agent --watchdog JOURNAL`) restores once the lease is over even
// when the agent itself was SIGKILLed, and the next hello restores what neither could. Servers report counts and
// durations, never timestamps: the two hosts' clocks are not synchronised, and latency is measured on the
// client's clock alone.
package agent

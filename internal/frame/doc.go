// Package frame reads and writes the Ethernet II / IPv4-or-IPv6 / UDP frames that napilab's request/response
// traffic uses, in place, without allocating.
//
// An AF_XDP socket hands userspace whole link-layer frames in UMEM: no kernel stack parses, checksums or answers
// them. Whatever the stack would do is this package's job. The views (Ethernet, IPv4, IPv6, UDP) are byte slices
// with getters and setters over the wire format, so parsing a request and turning it into its reply touches only
// the bytes that change. The checksums are the Internet checksum (RFC 1071): a ones'-complement sum, which is
// commutative. Swapping source and destination addresses and ports therefore leaves every checksum valid (a
// reply costs O(1)), and rewriting a few payload bytes updates the UDP checksum incrementally (RFC 1624) instead
// of summing the whole datagram again.
//
// A server must not echo what it has not checked: Answer verifies the IPv4 header checksum and the UDP checksum
// of a request (one pass over the datagram) before turning it around, and CheckReplyAddrs refuses a request
// whose reply would carry a broadcast, multicast or zero address or go back to its own sender. One kind of bad
// checksum is expected: a frame sent by a veth peer's kernel stack carries CHECKSUM_PARTIAL, its UDP checksum
// field holding only the pseudo-header sum, because the stack expected hardware to finish it, and veth never
// does. Answer tells it from a corrupted one (the field equals the pseudo-header sum) and, under
// RecomputeChecksums, completes it in the same pass.
//
// Parse is strict: it accepts one untagged Ethernet header, IPv4 (options allowed, fragments refused) or IPv6
// (Hop-by-Hop and Destination Options headers skipped, Routing and Fragment headers refused, because they change
// the UDP pseudo-header or split the datagram), and UDP whose length fits inside the IP payload. Everything else
// is a sentinel error, so rejecting a frame costs no allocation either.
//
// The standard library has no packet views, and gVisor's header package (the model for this one) cannot be
// imported without most of gVisor, so these few hundred lines are written here.
package frame

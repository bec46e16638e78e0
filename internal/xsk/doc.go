// Package xsk opens AF_XDP sockets: the kernel's path for handing raw frames between an XDP program and an
// application without the network stack.
//
// The model. The application registers a UMEM, one block of memory cut into equal frames (2048 or 4096 bytes),
// and owns every frame until it gives one away. Four single-producer, single-consumer rings of frame addresses
// move frames between the two sides:
//
//	fill        application → kernel   empty frames to receive into
//	RX          kernel → application   received frames (address, length)
//	TX          application → kernel   frames to send (address, length)
//	completion  kernel → application   frames the kernel has finished sending
//
// An XDP program on the device redirects a frame into the socket through an XSKMAP (bpf_redirect_map); the kernel
// takes a frame from the fill ring, copies the packet into it (copy mode) or lets the driver DMA into it
// (zero-copy), and posts it on the RX ring at frame start + 256 + headroom. Sending goes the other way, and in
// copy mode happens only when the application kicks the socket with sendto(2). With need_wakeup the kernel sets
// a flag on a ring when it wants such a kick, so a busy application can skip the system call otherwise; with
// SO_BUSY_POLL every kick also polls the device's NAPI (Documentation/networking/af_xdp.rst, napi.rst).
//
// The rings are shared memory: each side writes one free-running uint32 index and reads the other's. Producer and
// Consumer cache the other side's index and touch the shared word only when the cache runs dry, so a batch costs
// two atomic operations, not two per frame; nothing on that path allocates, locks or makes a system call.
//
// xsk is written on golang.org/x/sys/unix by hand because no well-kept pure-Go AF_XDP library exists: the
// known ones need cgo and libxdp, are stubs, or are not served by the module proxy. All uses of package unsafe
// are in mmap_unsafe.go. The in-memory sockets of NewInMemory, joined into a wire by package xsktest, let code on
// top of xsk be tested without privileges.
package xsk

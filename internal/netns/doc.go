// Package netns runs code inside a Linux network namespace, the one way napilab does so.
//
// # The kernel model
//
// A network namespace is a per-thread attribute: setns(2) moves only the calling thread, and every socket
// (netlink, AF_XDP, UDP) belongs for life to the namespace of the thread that created it. Go multiplexes
// goroutines over threads, so code that enters a namespace must lock its goroutine to the thread, and the thread
// must never run another goroutine while it is in the wrong namespace. sysfs is different again: /sys/class/net
// follows the mount namespace, not the thread's network namespace (see package sysknob), and sysctls under
// /proc/sys/net resolve in the namespace of the thread that opens them.
//
// Do therefore runs a function on a fresh goroutine locked to its own thread, entered into the namespace; the
// thread goes back into the namespace it came from and back to the scheduler afterwards, and when it cannot (or
// the function changed something else about the thread, such as its mount namespace) the goroutine exits still
// locked and Go destroys the thread. Whatever the function opened (sockets, netlink connections) stays in the
// namespace and may be used from any goroutine afterwards. Written here because vishvananda/netns only switches
// the calling thread and leaves this discipline to every caller (gotcha 19 in the project notes).
//
// A namespace is named by a path another process can open (/run/netns/NAME, /proc/PID/ns/net) or by "" for
// the one napilab runs in. Its nsfs inode tells it apart from a later namespace that reuses the name.
package netns

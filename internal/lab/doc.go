// Package lab boots a current Debian kernel under qemu and runs programs inside it, so napilab can prove its
// kernel-facing features on a kernel the host does not run (threaded NAPI busy poll needs 6.19) and on a real
// NIC driver (virtio_net, with NAPI, queues and AF_XDP zero copy) rather than veth.
//
// The kernel model in short: Debian 7.x kernels ship as three packages per release (KVER, e.g.
// "7.3.4+deb13-cloud-amd64"): linux-binary-KVER (vmlinuz), linux-modules-KVER (xz-compressed .ko files) and
// linux-base-KVER (config, modules.builtin). virtio_net and veth are modules in the cloud flavour, so the guest's
// init must load them, with their dependencies, before any test sees a NIC. qemu boots the kernel directly
// (-kernel/-initrd) under TCG, since CI has no KVM; two virtio-net-pci NICs sit on a hub inside qemu, so the guest
// has a wire between its NICs and the host's network is never touched. With iommu_platform=on the device offers
// VIRTIO_F_ACCESS_PLATFORM, which virtio_net needs for AF_XDP zero copy.
//
// A run has four phases: Fetch resolves and caches the kernel (apt-get with a private configuration, so the
// archive's signatures and the packages' hashes are checked by apt and the host's sources stay untouched; the
// cached files' SHA-256 sums are re-checked on every use); the initramfs is built from a cached base archive
// (busybox, modules, init) and a small per-run archive (plan, step binaries); qemu boots; the guest's init (package
// guest) runs the steps and prints a verdict marker carrying a per-run nonce. Only that marker counts: a panic,
// a crash or a hang ends without it and Run fails with the console tail.
//
// Boot is the expensive part (about 3 s under TCG, the kernel's own 2 s included), so one run takes several
// steps: GoTestSteps compiles packages' tests with go test -c and runs them all in one boot, each in its package
// directory with its testdata, beside a static napilab named by NAPILAB_BIN. Steps see NAPILAB_LAB=1, the NICs in
// NAPILAB_LAB_NICS and a results device in NAPILAB_LAB_RESULTS (a virtio-serial port whose bytes land in
// Result.Results). Package labtest turns the NICs into a testbed; docs/lab.md says what runs in the lab and why.
//
// Written here rather than taken from a library: the cpio "newc" writer (a dozen header fields; the maintained
// Go implementations live inside large projects), the shared-library closure of a dynamic binary (debug/elf does
// the parsing) and the parsers of apt-cache output and modules.dep, which are small and fuzzed. Everything
// kernel- and package-shaped is done by the tools that own it: apt-get, dpkg-deb, busybox depmod, qemu.
package lab

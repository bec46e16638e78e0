// Package sysknobtest builds a fake /sys and /proc in a temporary directory, shaped like a 6.18 virtio guest's,
// so that every sysknob knob can be read, written, snapshotted and restored without root. Files hold exactly the
// text the kernel prints (trailing newline, kernel-width hex masks); class/net entries are symlinks into
// devices/, as in real sysfs.
//
// The default tree has 4 CPUs, a virtio_net eth0 (bus device virtio2) with 2 queue pairs and IRQs 37–41 named
// as virtio names them, lo, three workqueues, SMT on, and RT throttling at 950000/1000000 µs.
package sysknobtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/sysknob"
)

// Tree is a fake sysfs/procfs tree and the sysknob view of it.
type Tree struct {
	Dir  string        // holds sys/ and proc/
	Root *sysknob.Root // the view tests pass to the code under test
	cpus int
	tb   testing.TB
}

type config struct{ cpus int }

// Option changes the default tree.
type Option func(*config)

// CPUs makes a machine with n CPUs, all online (n > 64 exercises multi-group hex masks).
func CPUs(n int) Option { return func(c *config) { c.cpus = n } }

// New builds the tree in tb.TempDir() and closes its Root when tb ends.
func New(tb testing.TB, opts ...Option) *Tree {
	tb.Helper()
	c := config{cpus: 4}
	for _, o := range opts {
		o(&c)
	}
	t := &Tree{Dir: tb.TempDir(), cpus: c.cpus, tb: tb}
	all := fmt.Sprintf("0-%d\n", c.cpus-1)
	for _, f := range []string{"online", "possible", "present"} {
		t.Write("/sys/devices/system/cpu/"+f, all)
	}
	t.Write("/sys/devices/system/cpu/offline", "\n")
	for i := range c.cpus {
		t.Write(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/uevent", i), "")
	}
	t.Write("/sys/devices/system/cpu/smt/control", "on\n")
	t.Write("/sys/devices/system/cpu/smt/active", "1\n")

	t.addDevice("lo", "virtual/net/lo", "", 1)
	t.addDevice("eth0", "pci0000:00/0000:00:03.0/virtio2/net/eth0", "virtio2", 2)

	for _, kv := range [][2]string{
		{"net/core/busy_read", "0"}, {"net/core/busy_poll", "0"}, {"net/core/rps_sock_flow_entries", "0"},
		{"net/core/somaxconn", "4096"}, {"kernel/timer_migration", "1"},
		{"kernel/sched_rt_runtime_us", "950000"}, {"kernel/sched_rt_period_us", "1000000"},
	} {
		t.Write("/proc/sys/"+kv[0], kv[1]+"\n")
	}

	full := t.Mask(sysknob.CPURange(0, c.cpus-1))
	t.Write("/sys/devices/virtual/workqueue/cpumask", full+"\n")
	t.Write("/sys/devices/virtual/workqueue/uevent", "")
	t.Write("/sys/devices/virtual/workqueue/power/control", "auto\n")
	for _, wq := range []string{"writeback", "blkcg_punt_bio", "nvme-wq"} {
		t.Write("/sys/devices/virtual/workqueue/"+wq+"/cpumask", full+"\n")
		t.Write("/sys/devices/virtual/workqueue/"+wq+"/nice", "0\n")
	}

	t.writeInterrupts()
	t.AddThread(os.Getpid(), sysknob.CPURange(0, c.cpus-1))

	root, err := sysknob.Dir(t.Dir)
	if err != nil {
		tb.Fatalf("sysknobtest: %v", err)
	}
	t.Root = root
	tb.Cleanup(func() { root.Close() })
	return t
}

// addDevice creates /sys/devices/<devPath> with the per-device NAPI and queue files, the class/net symlink and,
// when busDev is set, the device symlink to it.
func (t *Tree) addDevice(name, devPath, busDev string, queues int) {
	base := "/sys/devices/" + devPath
	for _, kv := range [][2]string{{"threaded", "0"}, {"napi_defer_hard_irqs", "0"}, {"gro_flush_timeout", "0"},
		{"carrier", "1"}, {"mtu", "1500"}} {
		t.Write(base+"/"+kv[0], kv[1]+"\n")
	}
	for q := range queues {
		t.Write(fmt.Sprintf("%s/queues/rx-%d/rps_cpus", base, q), t.Mask(sysknob.CPUSet{})+"\n")
		t.Write(fmt.Sprintf("%s/queues/rx-%d/rps_flow_cnt", base, q), "0\n")
		t.Write(fmt.Sprintf("%s/queues/tx-%d/xps_cpus", base, q), t.Mask(sysknob.CPUSet{})+"\n")
	}
	t.symlink("../../devices/"+devPath, "/sys/class/net/"+name)
	if busDev != "" {
		t.symlink("../../../"+busDev, base+"/device")
	}
}

// AddVeth adds a veth-like device: NAPI knobs and queues, no bus device, no IRQs.
func (t *Tree) AddVeth(name string, queues int) {
	t.addDevice(name, "virtual/net/"+name, "", queues)
}

// AddThread gives the fake procfs a /proc/<pid>/status allowing cpus.
func (t *Tree) AddThread(pid int, cpus sysknob.CPUSet) {
	t.Write(fmt.Sprintf("/proc/%d/status", pid), fmt.Sprintf("Name:\tnapi/eth0-257\nState:\tS (sleeping)\n"+
		"Tgid:\t%d\nPid:\t%d\nCpus_allowed:\t%s\nCpus_allowed_list:\t%s\nvoluntary_ctxt_switches:\t7\n",
		pid, pid, t.Mask(cpus), cpus))
}

// writeInterrupts writes /proc/interrupts and /proc/irq/<n>/ for eth0's virtio IRQs plus the usual extras.
func (t *Tree) writeInterrupts() {
	var b strings.Builder
	b.WriteString("     ")
	for i := range t.cpus {
		fmt.Fprintf(&b, " %10s", fmt.Sprintf("CPU%d", i))
	}
	b.WriteString("\n")
	row := func(id string, base uint64, tail string) {
		fmt.Fprintf(&b, "%4s:", id)
		for i := range t.cpus {
			fmt.Fprintf(&b, " %10d", base*uint64(i+1))
		}
		b.WriteString(" " + tail + "\n")
	}
	irqs := []struct {
		n    int
		tail string
	}{
		{24, " IO-APIC   5-edge      ACPI:Ged"},
		{36, "PCI-MSIX-0000:00:03.0   0-edge      virtio2-config"},
		{37, "PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0"},
		{38, "PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0"},
		{39, "PCI-MSIX-0000:00:03.0   3-edge      virtio2-input.1"},
		{40, "PCI-MSIX-0000:00:03.0   4-edge      virtio2-output.1"},
		{41, "PCI-MSI 458752-edge      PCIe PME, pciehp"},
	}
	all := sysknob.CPURange(0, t.cpus-1)
	for _, irq := range irqs {
		row(fmt.Sprint(irq.n), uint64(irq.n), irq.tail)
		t.Write(fmt.Sprintf("/proc/irq/%d/smp_affinity_list", irq.n), all.String()+"\n")
		t.Write(fmt.Sprintf("/proc/irq/%d/smp_affinity", irq.n), t.Mask(all)+"\n")
	}
	t.Write("/proc/irq/0/spurious", "count 0\n") // IRQ 0 exists without an affinity file, as on x86
	row("NMI", 0, "  Non-maskable interrupts")
	row("LOC", 6000, "  Local timer interrupts")
	b.WriteString(" ERR:          0\n")
	t.Write("/proc/interrupts", b.String())
}

// Mask formats s as the kernel prints masks on this machine: 32-bit groups, the first only as wide as the CPU
// count needs, zero-padded.
func (t *Tree) Mask(s sysknob.CPUSet) string {
	groups := (t.cpus + 31) / 32
	firstDigits := ((t.cpus-1)%32)/4 + 1
	words := make([]uint32, groups)
	for _, c := range s.List() {
		words[c/32] |= 1 << (uint(c) % 32)
	}
	parts := make([]string, 0, groups)
	for g := groups - 1; g >= 0; g-- {
		width := 8
		if g == groups-1 {
			width = firstDigits
		}
		parts = append(parts, fmt.Sprintf("%0*x", width, words[g]))
	}
	return strings.Join(parts, ",")
}

// Path maps a real path ("/sys/class/net/eth0/threaded") into the tree.
func (t *Tree) Path(real string) string { return filepath.Join(t.Dir, filepath.FromSlash(real)) }

// Read returns the text of a file of the tree, failing the test if it is absent.
func (t *Tree) Read(real string) string {
	t.tb.Helper()
	b, err := os.ReadFile(t.Path(real))
	if err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
	return string(b)
}

// Write sets the text of a file of the tree, creating it and its directories.
func (t *Tree) Write(real, text string) {
	t.tb.Helper()
	p := t.Path(real)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
}

// Remove deletes a file of the tree, to model a kernel or driver without it.
func (t *Tree) Remove(real string) {
	t.tb.Helper()
	if err := os.Remove(t.Path(real)); err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
}

func (t *Tree) symlink(target, real string) {
	t.tb.Helper()
	p := t.Path(real)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.tb.Fatalf("sysknobtest: %v", err)
	}
}

package lab

import (
	"slices"
	"strings"
	"testing"
)

func TestQemuArgs(t *testing.T) {
	p := qemuPaths{kernel: "/c/vmlinuz", initrd: "/t/initrd", results: "/t/results"}
	s := Spec{NICs: 2, ZeroCopy: true}
	args := strings.Join(qemuArgs(&s, p), " ")
	for _, want := range []string{
		"-accel tcg,thread=single", "-smp 2", "-m 1024", "-no-reboot", "-nodefaults",
		"-kernel /c/vmlinuz", "-initrd /t/initrd", "panic=-1", "console=ttyS0",
		"-netdev hubport,id=nic0,hubid=0", "-netdev hubport,id=nic1,hubid=0",
		"virtio-net-pci,netdev=nic1,mac=52:54:00:6e:6c:02,romfile=,disable-legacy=on,iommu_platform=on",
		"path=/t/results", "name=napilab.results",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "tap") || strings.Contains(args, "-net ") {
		t.Errorf("single-queue NICs must not touch host networking:\n%s", args)
	}

	mq := Spec{NICs: 1, Queues: 4, VCPUs: 4, MemoryMiB: 512, Accel: "tcg"}
	args = strings.Join(qemuArgs(&mq, p), " ")
	for _, want := range []string{"-netdev tap,id=nic0,ifname=nltap0,script=no,downscript=no,vhost=off,queues=4", "mq=on,vectors=10", "-smp 4", "-m 512", "-accel tcg "} {
		if !strings.Contains(args, want) {
			t.Errorf("multi-queue args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "iommu_platform") {
		t.Errorf("zero copy was not asked for:\n%s", args)
	}
	if n := slices.Index(qemuArgs(&Spec{}, p), "-netdev"); n >= 0 {
		t.Errorf("no NICs asked for, got -netdev at %d", n)
	}
}

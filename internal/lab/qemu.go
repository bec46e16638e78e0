package lab

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/lab/guest"
)

// nicMAC numbers the NICs' MAC addresses in list order (52:54:00 is qemu's locally administered prefix), so the
// guest can tell them apart by MAC whatever order the kernel probes them in.
func nicMAC(i int) string { return fmt.Sprintf("52:54:00:6e:6c:%02x", i+1) }

// tapName is the host-side tap of NIC i; it exists only in the run's private network namespace.
func tapName(i int) string { return "nltap" + strconv.Itoa(i) }

// qemuPaths are the files a boot uses.
type qemuPaths struct{ kernel, initrd, results string }

// qemuArgs builds the qemu command line. The serial console is qemu's stdio (console and verdict markers);
// a virtio-serial port carries bulk results to a host file; NICs share qemu's internal hub 0 unless they are
// multi-queue, which only the tap backend offers.
func qemuArgs(s *Spec, p qemuPaths) []string {
	cmdline := []string{"console=ttyS0", "panic=-1", "quiet", "rdinit=" + "/init"}
	args := []string{
		"-machine", "q35", "-accel", s.accel(), "-cpu", "max",
		"-m", strconv.Itoa(s.memoryMiB()), "-smp", strconv.Itoa(s.vcpus()),
		"-display", "none", "-nodefaults", "-no-user-config", "-no-reboot",
		// signal=off: Ctrl-C in `lab shell` goes to the guest instead of killing qemu.
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-kernel", p.kernel, "-initrd", p.initrd, "-append", strings.Join(cmdline, " "),
		"-device", "virtio-serial-pci",
		"-chardev", "file,id=res0,path=" + p.results,
		"-device", "virtserialport,chardev=res0,name=" + guest.ResultsPortName,
	}
	q := s.queues()
	for i := range s.NICs {
		id := "nic" + strconv.Itoa(i)
		dev := "virtio-net-pci,netdev=" + id + ",mac=" + nicMAC(i) + ",romfile="
		if q > 1 {
			args = append(args, "-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no,vhost=off,queues=%d", id, tapName(i), q))
			dev += fmt.Sprintf(",mq=on,vectors=%d", 2*q+2)
		} else {
			args = append(args, "-netdev", "hubport,id="+id+",hubid=0")
		}
		if s.ZeroCopy {
			dev += ",disable-legacy=on,iommu_platform=on"
		}
		args = append(args, "-device", dev)
	}
	return args
}

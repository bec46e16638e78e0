package trace

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/xdp"
)

// turnaroundKernel is a TurnaroundTracer's kernel side.
type turnaroundKernel struct {
	mapID     uint32 // the XSKMAP watched
	obj       objects
	state     *ebpf.Map
	costStart []ProgramCost
}

func (t *turnaroundKernel) load(target TurnaroundTarget, stats bool) (err error) {
	if err := unix.Kill(target.PID, 0); errors.Is(err, unix.ESRCH) {
		return kernel.Fieldf("pid", "%d: there is no such process", target.PID)
	}
	mapID, err := xskMapOf(netns.Path(target.NetNS), target.Dev)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var m mapFDs
	if _, err = t.obj.begin(stats, &m, "xdp_redirect", "sys_enter"); err != nil {
		return err
	}
	if t.state, err = t.obj.newMap("napilab_turn", ebpf.Array, 4, turnaroundValSz, 1, 0); err != nil {
		return err
	}
	m.turnaround = t.state.FD()
	// The kick first: a request that lands before it is attached is answered and cleared, not left waiting.
	nrs := []int32{unix.SYS_SENDTO, unix.SYS_SENDMSG}
	if err := t.obj.rawTracepoint("napilab_turn_out", "sys_enter",
		turnaroundOutInsns(m, int32(target.PID), target.Thread, nrs), true); err != nil {
		return err
	}
	if err := t.obj.rawTracepoint("napilab_turn_in", "xdp_redirect",
		turnaroundInInsns(m, mapID, target.Queue), true); err != nil {
		return err
	}
	t.mapID, t.costStart = mapID, t.obj.costs()
	return nil
}

func (t *turnaroundKernel) loaded() bool { return t.state != nil }

func (t *turnaroundKernel) read(r *TurnaroundTrace) error {
	var v []byte
	if err := t.state.Lookup(uint32(0), &v); err != nil {
		return kernel.NewOpError("read BPF map", "turnaround", err)
	}
	if err := decodeTurnaround(v, r); err != nil {
		return err
	}
	if c := t.obj.costs(); c != nil {
		r.Cost = costSince(t.costStart, c)
	}
	return nil
}

func (t *turnaroundKernel) close() error {
	err := t.obj.close()
	*t = turnaroundKernel{}
	return err
}

// xskMapOf finds the XSKMAP that the XDP program attached to device dev, in the network namespace at nsPath ("" for
// napilab's own), redirects into: the program from rtnetlink, its maps from the kernel.
func xskMapOf(nsPath, dev string) (uint32, error) {
	where := netns.Describe(nsPath)
	nsfd, closeNS, err := openNetNS(nsPath)
	if err != nil {
		return 0, err
	}
	defer closeNS()
	ifindex, err := ifindexIn(nsfd, dev, where)
	if err != nil {
		return 0, err
	}
	var progID uint32
	if err := doIn(nsfd, where, func() error {
		a, ok, err := xdp.AttachedProgram(ifindex)
		if ok {
			progID = a.ProgramID
		}
		return err
	}); err != nil {
		return 0, err
	}
	if progID == 0 {
		return 0, kernel.Fieldf("dev", "%s in %s has no XDP program attached: start the server first (its XDP "+
			"program steers the requests into its socket)", dev, where)
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(progID))
	if err != nil {
		return 0, kernel.NewOpError(fmt.Sprintf("open XDP program %d of", progID), dev, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return 0, kernel.NewOpError(fmt.Sprintf("read XDP program %d of", progID), dev, err)
	}
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		mi, err := m.Info()
		m.Close()
		if err == nil && mi.Type == ebpf.XSKMap {
			return uint32(id), nil
		}
	}
	return 0, kernel.Fieldf("dev", "%s: its XDP program (id %d) uses no XSKMAP, so it steers nothing into an AF_XDP "+
		"socket", dev, progID)
}

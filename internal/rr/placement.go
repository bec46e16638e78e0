package rr

import "github.com/napilab/napilab/internal/note"

// Placement is where the client's or server's spinning loops run. Every loop spins on a CPU; more spinning
// threads than CPUs measures the scheduler instead of the network (on a 2-vCPU machine the original xsk_rr's
// own three-thread client turned 7 µs round trips into 1-3 ms scheduler slices).
type Placement struct {
	Sender    SenderPlacement `json:"sender"`                // resolved: thread or inline
	Spinners  int             `json:"spinning_threads"`      // this process's spinning threads
	Colocated int             `json:"colocated_spinners"`    // other spinning threads on this machine
	CPUs      int             `json:"usable_cpus"`           // CPUs this process may run on
	Pins      []int           `json:"pinned_cpus,omitempty"` // receiver, sender, poller, as pinned
	Notes     []note.Note     `json:"notes,omitempty"`
}

// placeClient resolves the sender placement and checks that the spinning threads fit the usable CPUs.
// th.Colocated counts spinning threads of other processes on the machine (a server in the same testbed).
func placeClient(w *Workload, th *Threads, usableCPUs int) Placement {
	colocated := th.Colocated
	pl := Placement{Sender: th.Sender, Colocated: colocated, CPUs: usableCPUs}
	base := 1 // the receive loop
	if th.Poll == PollSeparate {
		base++
	}
	if !w.OpenLoop() || w.Windowed() {
		pl.Sender = SenderInline // a closed loop or a window sends from the receive loop, which sees the replies
	} else if pl.Sender == SenderAuto || pl.Sender == "" {
		pl.Sender = SenderInline
		if base+1+colocated <= usableCPUs {
			pl.Sender = SenderThread
		}
	}
	pl.Spinners = base
	if pl.Sender == SenderThread {
		pl.Spinners++
	}
	if total := pl.Spinners + colocated; total > usableCPUs {
		pl.Notes = append(pl.Notes, note.Warnf("%d spinning threads (%d here, %d colocated) on %d usable CPUs: "+
			"results will measure the scheduler, not the network; send inline, poll inline or not at all, or use "+
			"more CPUs", total, pl.Spinners, colocated, usableCPUs))
	}
	return pl
}

package trace

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NAPIReport says who polled one NAPI during an observation, and how much each poll found.
type NAPIReport struct {
	ID          uint32   `json:"napi_id"`
	Polls       uint64   `json:"polls"`
	PollsPerSec float64  `json:"polls_per_sec"`
	EmptyPolls  uint64   `json:"empty_polls"`
	Packets     uint64   `json:"packets"`
	PerPoll     Hist     `json:"packets_per_poll"`
	Pollers     []Poller `json:"pollers"` // most polls first
	Verdict     string   `json:"verdict"`
}

// Poller is one thread that polled a NAPI in one way (a thread's softirq polls and its busy polls are two).
type Poller struct {
	Comm        string  `json:"comm"`
	TID         int     `json:"tid"`
	PID         int     `json:"pid"`
	Kind        Kind    `json:"kind"`
	CPUs        []int   `json:"cpus"`
	Polls       uint64  `json:"polls"`
	EmptyPolls  uint64  `json:"empty_polls"`
	Packets     uint64  `json:"packets"`
	PollShare   float64 `json:"poll_share"`   // of the NAPI's polls
	PacketShare float64 `json:"packet_share"` // of the packets its polls found
}

// summary aggregates the polls of one or more NAPIs.
type summary struct {
	ids                    []uint32
	polls, empty, packets  uint64
	perPoll                Hist
	pollers                []Poller
	kindPolls, kindPackets map[Kind]uint64
	duration               time.Duration
}

func summarize(ids []uint32, stats []PollStat, d time.Duration) summary {
	s := summary{ids: ids, duration: d, kindPolls: map[Kind]uint64{}, kindPackets: map[Kind]uint64{}}
	type who struct {
		tid  int
		kind Kind
	}
	index := map[who]int{}
	for _, p := range stats {
		if !slices.Contains(ids, p.NAPIID) {
			continue
		}
		k := who{p.TID, p.Kind()}
		i, ok := index[k]
		if !ok {
			i = len(s.pollers)
			index[k] = i
			s.pollers = append(s.pollers, Poller{Comm: p.Comm, TID: p.TID, PID: p.PID, Kind: k.kind})
		}
		pl := &s.pollers[i]
		if !slices.Contains(pl.CPUs, p.CPU) {
			pl.CPUs = append(pl.CPUs, p.CPU)
		}
		pl.Polls += p.Polls
		pl.EmptyPolls += p.PerPoll.Counts[0]
		pl.Packets += p.Packets
		s.polls += p.Polls
		s.empty += p.PerPoll.Counts[0]
		s.packets += p.Packets
		s.perPoll.Add(&p.PerPoll)
		s.kindPolls[k.kind] += p.Polls
		s.kindPackets[k.kind] += p.Packets
	}
	for i := range s.pollers {
		pl := &s.pollers[i]
		slices.Sort(pl.CPUs)
		pl.PollShare, pl.PacketShare = share(pl.Polls, s.polls), share(pl.Packets, s.packets)
	}
	slices.SortStableFunc(s.pollers, func(a, b Poller) int {
		return cmp.Or(cmp.Compare(b.Polls, a.Polls), cmp.Compare(a.TID, b.TID), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	return s
}

func share(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// byPackets reports whether the summary judges pollers by the packets they found: it does when any packet
// arrived, since a busy poller that spins finds nothing most of the times it polls, and what matters is who
// took the packets; with no packets it judges by polls.
func (s summary) byPackets() bool { return s.packets > 0 }

// dominant returns the kind of poller that took most packets (or made most polls), its share, and the top
// poller of that kind.
func (s summary) dominant() (Kind, float64, Poller) {
	count, total := s.kindPolls, s.polls
	if s.byPackets() {
		count, total = s.kindPackets, s.packets
	}
	var best Kind
	for _, k := range kinds {
		if count[k] > count[best] || best == "" {
			best = k
		}
	}
	var top Poller
	for _, p := range s.pollers {
		if p.Kind != best {
			continue
		}
		if top.Kind == "" || (s.byPackets() && p.Packets > top.Packets) || (!s.byPackets() && p.Polls > top.Polls) {
			top = p
		}
	}
	return best, share(count[best], total), top
}

// verdict is the one-line reading of a summary, e.g. "threaded in effect: NAPI 364 polled by napi/veth-b-364
// (pid 812) on CPU 1 (98% of polls, 100% of packets)". Names are the kernel's task names, cut at 15 characters
// (napi/veth-b-1039 reads napi/veth-b-103).
func (s summary) verdict() string {
	what := "NAPI " + idList(s.ids)
	if len(s.ids) > 1 {
		what = "NAPIs " + idList(s.ids)
	}
	if s.polls == 0 {
		return fmt.Sprintf("%s was not polled in %s: no traffic reached it, or its id changed (a device reset "+
			"or an XDP attach can recreate a NAPI)", what, s.duration.Round(time.Millisecond))
	}
	kind, _, top := s.dominant()
	shares := fmt.Sprintf("%s of polls", percent(share(s.kindPolls[kind], s.polls)))
	if s.packets > 0 {
		shares += fmt.Sprintf(", %s of packets", percent(share(s.kindPackets[kind], s.packets)))
	}
	cpus := cpuList(s.cpusOf(kind))
	switch kind {
	case KindKthread:
		return fmt.Sprintf("threaded in effect: %s polled by %s (pid %d) on %s (%s)", what, top.Comm, top.TID, cpus,
			shares)
	case KindSoftirq:
		return fmt.Sprintf("softirq in effect: %s polled in softirq on %s, mostly on the time of %s (%s)", what,
			cpus, top.Comm, shares)
	}
	return fmt.Sprintf("busy polling in effect: %s polled by %s (tid %d) on %s (%s)", what, top.Comm, top.TID,
		cpus, shares)
}

// cpusOf lists the CPUs on which pollers of kind polled.
func (s summary) cpusOf(kind Kind) []int {
	var cpus []int
	for _, p := range s.pollers {
		if p.Kind == kind {
			cpus = append(cpus, p.CPUs...)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus)
}

func cpuList(cpus []int) string {
	if len(cpus) == 1 {
		return "CPU " + strconv.Itoa(cpus[0])
	}
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.Itoa(c)
	}
	return "CPUs " + strings.Join(parts, ",")
}

func idList(ids []uint32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, ", ")
}

func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" }

// NAPIs reports each target NAPI of the observation, in the target's order.
func (o *Observation) NAPIs() []NAPIReport {
	out := make([]NAPIReport, 0, len(o.Target.NAPIs))
	for _, id := range o.Target.NAPIs {
		s := summarize([]uint32{id}, o.Polls, o.Duration)
		r := NAPIReport{ID: id, Polls: s.polls, EmptyPolls: s.empty, Packets: s.packets, PerPoll: s.perPoll,
			Pollers: s.pollers, Verdict: s.verdict()}
		if r.Pollers == nil {
			r.Pollers = []Poller{}
		}
		if o.Duration > 0 {
			r.PollsPerSec = float64(s.polls) / o.Duration.Seconds()
		}
		out = append(out, r)
	}
	return out
}

func sortPolls(p []PollStat) {
	slices.SortFunc(p, func(a, b PollStat) int {
		return cmp.Or(cmp.Compare(a.NAPIID, b.NAPIID), cmp.Compare(a.TID, b.TID), cmp.Compare(a.CPU, b.CPU),
			cmpBool(a.Softirq, b.Softirq))
	})
}

func sortThreads(t []ThreadSched) {
	slices.SortFunc(t, func(a, b ThreadSched) int { return cmp.Compare(a.TID, b.TID) })
	for i := range t {
		slices.SortFunc(t[i].Preemptors, func(a, b Preemptor) int {
			return cmp.Or(cmp.Compare(b.OffCPU, a.OffCPU), cmp.Compare(b.Count, a.Count), cmp.Compare(a.TID, b.TID))
		})
	}
}

func sortIRQs(c []IRQCount) {
	slices.SortFunc(c, func(a, b IRQCount) int { return cmp.Or(cmp.Compare(a.IRQ, b.IRQ), cmp.Compare(a.CPU, b.CPU)) })
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

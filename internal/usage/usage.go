// Package usage measures what a run costs in CPU, the figure the reviewers of threaded NAPI busy poll asked to see
// beside every latency number: per-CPU time split into user, system, softirq and hard-IRQ (from /proc/stat), the
// process's own CPU time and context switches (getrusage), the CPU time of named tasks such as a NAPI kthread
// (/proc/<pid>/schedstat, nanosecond resolution), interrupts of chosen IRQ lines (/proc/interrupts), and Go GC
// cycles (which must be zero during a measurement).
//
// A Snapshot is taken before and after a measurement window and the two are subtracted. Taking a snapshot reads
// /proc files; it never forks a tool, which on a busy 2-vCPU machine injects millisecond outliers into the very
// run being measured.
package usage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat times: 100 on every Linux architecture
// napilab builds for.
const clockTicks = 100

// Ticks converts a count of USER_HZ ticks to a duration.
func Ticks(n uint64) time.Duration { return time.Duration(n) * (time.Second / clockTicks) }

// CPUTimes is one line of /proc/stat, in USER_HZ ticks.
type CPUTimes struct {
	CPU                                  int // -1 for the aggregate "cpu" line
	User, Nice, System, Idle, IOWait     uint64
	IRQ, SoftIRQ, Steal, Guest, GuestNic uint64
}

func (c CPUTimes) total() uint64 {
	// guest time is already included in user time
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// StealBetween returns the steal time of cpu between two readings of the per-CPU times, and false when either
// reading lacks the CPU (it went offline) or its count went back.
func StealBetween(before, after []CPUTimes, cpu int) (time.Duration, bool) {
	i := slices.IndexFunc(before, func(c CPUTimes) bool { return c.CPU == cpu })
	j := slices.IndexFunc(after, func(c CPUTimes) bool { return c.CPU == cpu })
	if i < 0 || j < 0 || after[j].Steal < before[i].Steal {
		return 0, false
	}
	return Ticks(after[j].Steal - before[i].Steal), true
}

// ParseStat parses the per-CPU lines of /proc/stat (the aggregate line is skipped).
func ParseStat(b []byte) ([]CPUTimes, error) {
	var out []CPUTimes
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		cpu, err := strconv.Atoi(f[0][3:])
		if err != nil || cpu < 0 {
			return nil, fmt.Errorf("parse /proc/stat: bad CPU name %q", f[0])
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("parse /proc/stat: %s has %d fields, want at least 7", f[0], len(f)-1)
		}
		var v [10]uint64
		for i := 1; i < len(f) && i <= len(v); i++ {
			if v[i-1], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("parse /proc/stat: %s field %d: %w", f[0], i, err)
			}
		}
		out = append(out, CPUTimes{CPU: cpu, User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4],
			IRQ: v[5], SoftIRQ: v[6], Steal: v[7], Guest: v[8], GuestNic: v[9]})
	}
	if len(out) == 0 {
		return nil, errors.New("parse /proc/stat: no per-CPU lines")
	}
	return out, nil
}

// ParseSchedstat parses /proc/<pid>/schedstat: time on CPU, time waiting to run (both ns), and timeslices.
func ParseSchedstat(b []byte) (run, wait time.Duration, slices uint64, err error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("parse schedstat %q: want three numbers", b)
	}
	var v [3]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("parse schedstat %q: %w", b, err)
		}
	}
	return time.Duration(v[0]), time.Duration(v[1]), v[2], nil
}

// ParseTaskStat returns the name and the user and system CPU time from /proc/<pid>/stat. The name is in
// parentheses and may itself contain spaces and parentheses, so fields are counted from the last ')'.
func ParseTaskStat(b []byte) (name string, user, system time.Duration, err error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return "", 0, 0, fmt.Errorf("parse task stat: no (comm) in %q", truncate(b))
	}
	f := strings.Fields(string(b[close+1:]))
	// After comm: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
	if len(f) < 13 {
		return "", 0, 0, fmt.Errorf("parse task stat: %d fields after comm, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return "", 0, 0, fmt.Errorf("parse task stat: %w", err)
	}
	return string(b[open+1 : close]), Ticks(u), Ticks(s), nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// parseCPUModel returns the first "model name" of a /proc/cpuinfo text.
func parseCPUModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

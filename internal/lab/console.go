package lab

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/lab/guest"
)

// verdict is what the serial console says about a run, judged only by marker lines that carry the run's nonce.
type verdict struct {
	started   bool   // init printed its start marker: modules loaded, steps about to run
	release   string // kernel release seen by the guest
	uptimeMs  int64  // guest uptime at the start marker
	steps     []stepMark
	exited    bool // init printed its verdict
	exitCode  int
	earlyOops bool   // "Oops: int3" before the start marker: the MTTCG text-patching race worth one retry
	panicked  bool   // the kernel said "Kernel panic"
	panicWhy  string // what it said after that
	startEnd  int    // offset just past the start marker line
}

type stepMark struct {
	index, rc  int
	begin, end int // the step's output: from the end of the previous marker line to the start of this one
}

// parseConsole reads the serial console log. Kernel messages may share a line with init's output (the console
// is not line-buffered across writers), so a marker is recognised anywhere in a line and ends at the line's end.
func parseConsole(log []byte, nonce string) verdict {
	var v verdict
	start := guest.MarkStart + nonce + ":"
	step := guest.MarkStep + nonce + ":"
	exit := guest.MarkExit + nonce + ":"
	prevEnd := 0
	for off := 0; off < len(log); {
		lineStart := off
		nl := bytes.IndexByte(log[off:], '\n')
		end := len(log)
		if nl >= 0 {
			end = off + nl + 1
		}
		raw := log[off:end]
		off = end
		// Most lines are the steps' own output; only a few can matter.
		if !bytes.Contains(raw, []byte("NAPILAB_LAB_")) && !bytes.Contains(raw, []byte("Kernel panic")) &&
			!bytes.Contains(raw, []byte("Oops: int3")) {
			continue
		}
		line := strings.TrimRight(string(raw), "\r\n")
		switch {
		case strings.Contains(line, "Kernel panic"):
			if !v.panicked {
				// "Kernel panic - not syncing: <why>": the why names the crash even when the tail holds only the trace.
				_, why, _ := strings.Cut(line, "Kernel panic")
				v.panicWhy = strings.TrimLeft(why, " -")
			}
			v.panicked = true
		case !v.started && strings.Contains(line, "Oops: int3"):
			v.earlyOops = true
		}
		if v.exited {
			continue // nothing after the verdict counts
		}
		if i := strings.Index(line, start); i >= 0 && !v.started {
			f := strings.Split(line[i+len(start):], ":")
			if len(f) == 2 {
				if ms, err := strconv.ParseInt(f[1], 10, 64); err == nil && f[0] != "" {
					v.started, v.release, v.uptimeMs, v.startEnd = true, f[0], ms, end
					prevEnd = end
				}
			}
			continue
		}
		if i := strings.Index(line, step); i >= 0 && v.started {
			f := strings.Split(line[i+len(step):], ":")
			if len(f) == 2 {
				idx, err1 := strconv.Atoi(f[0])
				rc, err2 := strconv.Atoi(f[1])
				if err1 == nil && err2 == nil && idx == len(v.steps) {
					v.steps = append(v.steps, stepMark{index: idx, rc: rc, begin: prevEnd, end: lineStart})
					prevEnd = end
				}
			}
			continue
		}
		if i := strings.Index(line, exit); i >= 0 {
			if rc, err := strconv.Atoi(line[i+len(exit):]); err == nil {
				v.exited, v.exitCode = true, rc
			}
		}
	}
	return v
}

// tail returns the last n lines of log, for error messages.
func tail(log []byte, n int) string {
	lines := strings.Split(strings.ReplaceAll(string(bytes.TrimRight(log, "\r\n")), "\r", ""), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

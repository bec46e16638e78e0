package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Process identifies a process across time: a PID is reused once its process is gone, so the start time (in
// clock ticks after boot, field 22 of /proc/<pid>/stat) tells the process that wrote a state file from a later
// one that got its PID.
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Self identifies the calling process.
func Self() (Process, error) { return ProcessOf(os.Getpid()) }

// ProcessOf identifies the running process pid.
func ProcessOf(pid int) (Process, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Process{}, fmt.Errorf("identify process %d: %w", pid, err)
	}
	start, err := ParseStatStart(b)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, Start: start}, nil
}

// Alive reports whether p still runs. A Process without a start time (known by PID only) is alive while any
// process has its PID. A process whose /proc entry cannot be read for another reason than its absence counts as
// alive: a caller that would otherwise take over its state must not do so on a guess.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	start, err := ParseStatStart(b)
	return err != nil || p.Start == 0 || start == p.Start
}

// ParseStatStart returns the start time (field 22) from the contents of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may itself contain spaces and parentheses, so fields are counted after the
// last ')'.
func ParseStatStart(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse /proc/<pid>/stat: no ')' after the command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3 // fields after the command name start at field 3
	if len(fields) <= startField {
		return 0, fmt.Errorf("parse /proc/<pid>/stat: %d fields after the command name, want more than %d",
			len(fields), startField)
	}
	v, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/<pid>/stat start time: %w", err)
	}
	return v, nil
}

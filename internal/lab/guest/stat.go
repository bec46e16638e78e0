package guest

import (
	"bytes"
	"strconv"
	"strings"
)

// parseStat extracts comm, state and pgrp from /proc/<pid>/stat. comm is in parentheses and may itself contain
// spaces and parentheses, so the fields after it are counted from the last ')'.
func parseStat(b []byte) (comm, state string, pgrp int, ok bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", "", 0, false
	}
	comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 3 {
		return "", "", 0, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return "", "", 0, false
	}
	return comm, f[0], pgrp, true
}

// Package note is napilab's one type for what a reader must know besides the numbers: a caveat that changes how
// a result reads ("the socket has no NAPI id, so busy polling reaches nothing"), or a warning that a setting
// will hurt ("RT throttling will stall a FIFO spinner 50 ms of every second").
//
// The package that detects a condition says it, as a Note in the data it returns; only the renderers (package
// report, the xsk_rr main) decide how notes look. Notes travel inside results and the agent protocol as JSON.
package note

import (
	"fmt"
	"slices"
)

// Severity says how much a note matters to the reader of a result.
type Severity string

const (
	// Info explains how to read a figure; nothing is wrong.
	Info Severity = "info"
	// Warning says a figure is distorted or a setting hurts, and usually how to avoid it.
	Warning Severity = "warning"
)

// Note is one caveat, a sentence that reads on its own.
type Note struct {
	Severity Severity `json:"severity"`
	Text     string   `json:"text"`
}

// Warnf returns a warning.
func Warnf(format string, args ...any) Note {
	return Note{Severity: Warning, Text: fmt.Sprintf(format, args...)}
}

// Infof returns an informational note.
func Infof(format string, args ...any) Note {
	return Note{Severity: Info, Text: fmt.Sprintf(format, args...)}
}

func (n Note) String() string {
	if n.Severity == Warning {
		return "warning: " + n.Text
	}
	return n.Text
}

// Merge appends the notes of more to list that it does not hold yet, keeping the order of first appearance:
// the same caveat attached to many cells is read once.
func Merge(list []Note, more ...Note) []Note {
	for _, n := range more {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

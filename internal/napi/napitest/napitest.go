// Package napitest helps tests outside package napi check that napilab left a device as it found it.
package napitest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/napi"
)

// DeviceState is what `napilab show --json` says of dev in the network namespace ns ("" for the test's own),
// with the AF_XDP flags of its queues left out: the kernel lets go of a closed socket's queue asynchronously, so
// that flag is the socket's, not a setting napilab changed. Two equal states mean nothing napilab sets differs.
func DeviceState(tb testing.TB, ns, dev string) string {
	tb.Helper()
	sys, err := napi.Open(ns)
	if err != nil {
		tb.Fatal(err)
	}
	defer sys.Close()
	st, err := sys.Show(dev)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		tb.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), `,"xsk":true`, "")
	return strings.ReplaceAll(s, `,"xsk":false`, "")
}

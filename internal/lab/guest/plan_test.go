package guest

import (
	"strings"
	"testing"
	"time"
)

func TestPlanRoundTrip(t *testing.T) {
	p := &Plan{Nonce: "0123456789abcdef", Modules: []string{"/lib/modules/k/virtio_net.ko.xz"},
		Env: []string{"A=1"}, Steps: []Step{{Name: "t", Args: []string{"/napilab/bin/0/t", "-test.v"}}},
		Watchdog: 90 * time.Second, KeepGoing: true}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalPlan(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Nonce != p.Nonce || q.Watchdog != p.Watchdog || !q.KeepGoing || len(q.Steps) != 1 || q.Steps[0].Args[1] != "-test.v" {
		t.Errorf("round trip changed the plan: %+v", q)
	}
}

func TestPlanRejects(t *testing.T) {
	cases := map[string]string{
		`{"nonce":"xyz","shell":true}`:                            "nonce",
		`{"nonce":"0123456789abcdef"}`:                            "no steps",
		`{"nonce":"0123456789abcdef","steps":[{"args":[]}]}`:      "no command",
		`{"nonce":"0123456789abcdef","shell":true,"watchdog":-1}`: "negative",
		`{"nonce":`: "decode lab plan",
		`{"nonce":"0123456789ABCDEF","shell":true}`: "nonce",
	}
	for in, want := range cases {
		if _, err := UnmarshalPlan([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", in, err, want)
		}
	}
}

func TestMarkerLines(t *testing.T) {
	n := "00112233445566778899aabbccddeeff"
	if got := StartLine(n, "7.3.4+deb13-cloud-amd64", 2242*time.Millisecond); got != MarkStart+n+":7.3.4+deb13-cloud-amd64:2242" {
		t.Errorf("start line %q", got)
	}
	if got := StepLine(n, 2, 124); got != MarkStep+n+":2:124" {
		t.Errorf("step line %q", got)
	}
	if got := ExitLine(n, 3); got != MarkExit+n+":3" {
		t.Errorf("exit line %q", got)
	}
}

func TestParseStat(t *testing.T) {
	comm, state, pgrp, ok := parseStat([]byte("1234 (napi/eth1-513) R 2 0 0 0 -1 69238880 0 0"))
	if !ok || comm != "napi/eth1-513" || state != "R" || pgrp != 0 {
		t.Errorf("kthread: %q %q %d %v", comm, state, pgrp, ok)
	}
	comm, state, pgrp, ok = parseStat([]byte("77 (a) b (c)) D 1 77 77 0"))
	if !ok || comm != "a) b (c)" || state != "D" || pgrp != 77 {
		t.Errorf("comm with parentheses: %q %q %d %v", comm, state, pgrp, ok)
	}
	for _, bad := range []string{"", "12 comm R 1 2 3", "12 (x) R 1", "12 (x) R 1 notanumber"} {
		if _, _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseStat: any /proc/<pid>/stat content parses without panicking, and a parsed comm never contains the
// state that follows it.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (napi/eth1-513) R 2 0 0 0 -1 69238880 0 0"))
	f.Add([]byte(")( D 1 2 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, state, _, ok := parseStat(b)
		if ok && (state == "" || len(comm)+len(state) > len(b)) {
			t.Fatalf("parsed %q into comm %q state %q", b, comm, state)
		}
	})
}

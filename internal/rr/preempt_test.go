package rr

import (
	"slices"
	"testing"
)

func TestSpinningEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string
		want    []string
		changed bool
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=asyncpreemptoff=1"}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{"GODEBUG=asyncpreemptoff=1", "A=1"}, true},
		{"other settings kept", []string{"GODEBUG=gctrace=1,madvdontneed=0"},
			[]string{"GODEBUG=gctrace=1,madvdontneed=0,asyncpreemptoff=1"}, true},
		{"already off", []string{"GODEBUG=asyncpreemptoff=1"}, []string{"GODEBUG=asyncpreemptoff=1"}, false},
		{"the user turned it on", []string{"X=1", "GODEBUG=gctrace=1,asyncpreemptoff=0"},
			[]string{"X=1", "GODEBUG=gctrace=1,asyncpreemptoff=0"}, false},
		{"a duplicate GODEBUG dropped", []string{"GODEBUG=a=1", "GODEBUG=asyncpreemptoff=0"},
			[]string{"GODEBUG=a=1,asyncpreemptoff=1"}, true},
		{"a longer name is another setting", []string{"GODEBUG=asyncpreemptoffx=1"},
			[]string{"GODEBUG=asyncpreemptoffx=1,asyncpreemptoff=1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := spinningEnv(tc.env)
			if changed != tc.changed || !slices.Equal(got, tc.want) {
				t.Errorf("spinningEnv(%q) = %q, %v; want %q, %v", tc.env, got, changed, tc.want, tc.changed)
			}
		})
	}
}

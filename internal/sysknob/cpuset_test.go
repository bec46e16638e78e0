package sysknob_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/sysknob"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"\n", nil},
		{"0", []int{0}},
		{"0-3,5\n", []int{0, 1, 2, 3, 5}},
		{" 1,1,0 ", []int{0, 1}},
		{"62-65", []int{62, 63, 64, 65}},
		{"0-15:2/4", []int{0, 1, 4, 5, 8, 9, 12, 13}},
		{"127,255", []int{127, 255}},
	} {
		got, err := sysknob.ParseCPUList(tc.in)
		if err != nil {
			t.Errorf("ParseCPUList(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got.List(), tc.want) && !(len(tc.want) == 0 && got.IsEmpty()) {
			t.Errorf("ParseCPUList(%q) = %v, want %v", tc.in, got.List(), tc.want)
		}
	}
}

func TestParseCPUListRejects(t *testing.T) {
	for in, want := range map[string]string{
		"3-1":                  "runs backwards",
		"a":                    "not a CPU number",
		"1,,2":                 "not a CPU number",
		"-1":                   "not a CPU number",
		"0-4000000":            "beyond the 16384 CPUs",
		"0-7:5/4":              "0 < used <= group",
		"3:1/2":                "needs the form N-M:used/group",
		"0-7:0/2":              "0 < used <= group",
		"99999999999999999999": "beyond",
	} {
		_, err := sysknob.ParseCPUList(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCPUList(%q) error = %v, want it to say %q", in, err, want)
		}
	}
}

func TestParseCPUMask(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // list format
	}{
		{"0\n", ""},
		{"3", "0-1"},
		{"f", "0-3"},
		{"00000000,00000003", "0-1"},
		{"ff,ffffffff", "0-39"},
		{"80000000,00000000,00000001", "0,95"},
		{"1,00000000,00000000,00000000", "96"},
	} {
		got, err := sysknob.ParseCPUMask(tc.in)
		if err != nil {
			t.Errorf("ParseCPUMask(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("ParseCPUMask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "g", "123456789", "1,,2", "+1", "0x3", strings.Repeat("ffffffff,", 600) + "f"} {
		if _, err := sysknob.ParseCPUMask(bad); err == nil {
			t.Errorf("ParseCPUMask(%q) accepted it", bad)
		}
	}
}

func TestCPUSetFormats(t *testing.T) {
	s := sysknob.CPUs(0, 1, 2, 3, 5, 64, 65, 127)
	if got, want := s.String(), "0-3,5,64-65,127"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := s.Mask(), "80000000,00000003,00000000,0000002f"; got != want {
		t.Errorf("Mask() = %q, want %q", got, want)
	}
	if got := (sysknob.CPUSet{}).Mask(); got != "0" {
		t.Errorf("empty Mask() = %q, want 0", got)
	}
	if s.Len() != 8 || s.Max() != 127 || !s.Has(64) || s.Has(4) || s.Has(-1) || s.Has(1000) {
		t.Errorf("Len/Max/Has wrong for %v", s)
	}
	if got := s.Minus(sysknob.CPURange(0, 64)).String(); got != "65,127" {
		t.Errorf("Minus = %q, want 65,127", got)
	}
	if !sysknob.CPURange(3, 1).IsEmpty() || sysknob.CPURange(2, 2).String() != "2" {
		t.Error("CPURange bounds wrong")
	}
}

func TestCPUSetJSON(t *testing.T) {
	in := sysknob.Sched{PID: 7, Policy: sysknob.PolicyFIFO, Priority: 50, CPUs: sysknob.CPUs(1, 2, 3)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"cpus":"1-3"`) {
		t.Errorf("journal form %s does not carry the CPU list", b)
	}
	var out sysknob.Sched
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.PID != 7 || out.Policy != sysknob.PolicyFIFO || out.Priority != 50 || !out.CPUs.Equal(in.CPUs) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
}

// FuzzParseCPUList checks that whatever parses formats back to a list that parses to the same set.
func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-3,5", "", "0-15:2/4", "127,255", "3-1", "1,,2", "0-16383"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := sysknob.ParseCPUList(in)
		if err != nil {
			return
		}
		again, err := sysknob.ParseCPUList(s.String())
		if err != nil || !again.Equal(s) {
			t.Fatalf("%q parsed to %q, which reparses to %v, %v", in, s, again, err)
		}
		viaMask, err := sysknob.ParseCPUMask(s.Mask())
		if err != nil || !viaMask.Equal(s) {
			t.Fatalf("%q: mask %q reparses to %v, %v", in, s.Mask(), viaMask, err)
		}
	})
}

// FuzzParseCPUMask checks that whatever parses formats back to a mask that parses to the same set.
func FuzzParseCPUMask(f *testing.F) {
	for _, s := range []string{"3", "ff,ffffffff", "00000000,00000000,00000000", "1,00000000", "", "g", "123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := sysknob.ParseCPUMask(in)
		if err != nil {
			return
		}
		again, err := sysknob.ParseCPUMask(s.Mask())
		if err != nil || !again.Equal(s) {
			t.Fatalf("%q parsed to %v, whose mask %q reparses to %v, %v", in, s, s.Mask(), again, err)
		}
		viaList, err := sysknob.ParseCPUList(s.String())
		if err != nil || !viaList.Equal(s) {
			t.Fatalf("%q: list %q reparses to %v, %v", in, s, viaList, err)
		}
	})
}

package lab

import (
	"strings"
	"testing"
	"time"
)

func validSpec() Spec {
	return Spec{Steps: []Step{{Args: []string{"true"}}}}
}

func TestSpecValidateAccepts(t *testing.T) {
	specs := map[string]Spec{
		"zero plus a step": validSpec(),
		"shell":            {Shell: true},
		"everything": {
			Kernel: KernelSpec{Suite: "sid", Version: "7.3.4+deb13-cloud-amd64", Flavour: "amd64", Mirror: "http://example.org/debian"},
			VCPUs:  4, MemoryMiB: 2048, NICs: 2, Queues: 4, ZeroCopy: true,
			Timeout: time.Minute, Watchdog: 30 * time.Second,
			Steps:   []Step{{Path: "/bin/true", Env: []string{"A=1"}}, {Args: []string{"sh", "-c", "exit 0"}}},
			Env:     []string{"NAPILAB_REQUIRE_PRIV=1", "EMPTY="},
			Files:   []File{{Host: "/etc/hostname", Guest: "/etc/hostname"}},
			Modules: []string{"sch_netem", "xfrm-user"},
		},
	}
	for name, s := range specs {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSpecValidateRejects(t *testing.T) {
	cases := []struct {
		mutate func(*Spec)
		want   string
	}{
		{func(s *Spec) { s.Kernel.Suite = "Trixie Backports" }, "not a Debian suite"},
		{func(s *Spec) { s.Kernel.Version = "latest" }, "malformed"},
		{func(s *Spec) { s.Kernel.Flavour = "arm64" }, "use cloud-amd64 or amd64"},
		{func(s *Spec) { s.Kernel.Mirror = "ftp://x" }, "not an http(s) URL"},
		{func(s *Spec) { s.VCPUs = 9 }, "vCPUs is out of range"},
		{func(s *Spec) { s.MemoryMiB = 64 }, "MiB of guest memory"},
		{func(s *Spec) { s.NICs = 5 }, "NICs is out of range"},
		{func(s *Spec) { s.Queues = 2 }, "no NICs"},
		{func(s *Spec) { s.Timeout = time.Second }, "at least 10s"},
		{func(s *Spec) { s.Timeout = time.Minute; s.Watchdog = time.Minute }, "shorter than the timeout"},
		{func(s *Spec) { s.Shell = true }, "takes no steps"},
		{func(s *Spec) { s.Steps = nil }, "nothing to run"},
		{func(s *Spec) { s.Steps = []Step{{}} }, "step 0 has no program"},
		{func(s *Spec) { s.Steps[0].Env = []string{"NOEQUALS"} }, "not KEY=VALUE"},
		{func(s *Spec) { s.Env = []string{"1X=2"} }, "not KEY=VALUE"},
		{func(s *Spec) { s.Files = []File{{Host: "a", Guest: "rel/path"}} }, "clean absolute guest path"},
		{func(s *Spec) { s.Files = []File{{Host: "a", Guest: "/init"}} }, "reserved"},
		{func(s *Spec) { s.Files = []File{{Host: "a", Guest: "/napilab/plan.json"}} }, "reserved"},
		{func(s *Spec) { s.Modules = []string{"../../etc/passwd"} }, "module name"},
		{func(s *Spec) { s.Accel = "tcg thread=single" }, "contains spaces"},
	}
	for _, c := range cases {
		s := validSpec()
		c.mutate(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, c.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "lab: ") || strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("error %q is not one sentence starting with the package", err)
		}
	}
}

func TestSpecDefaults(t *testing.T) {
	var s Spec
	if s.vcpus() != 2 || s.memoryMiB() != 1024 || s.queues() != 1 || s.accel() != DefaultAccel {
		t.Errorf("defaults: vcpus %d memory %d queues %d accel %q", s.vcpus(), s.memoryMiB(), s.queues(), s.accel())
	}
	cases := []struct{ timeout, watchdog, want time.Duration }{
		{0, 0, 9 * time.Minute},                 // default 10 min, allowance capped at 1 min
		{40 * time.Second, 0, 25 * time.Second}, // allowance at least 15 s
		{20 * time.Second, 0, 10 * time.Second}, // but at most half the timeout
		{2 * time.Minute, 0, 90 * time.Second},  // a quarter
		{time.Minute, 5 * time.Second, 5 * time.Second},
		{time.Minute, -1, 0}, // disabled
	}
	for _, c := range cases {
		s := Spec{Timeout: c.timeout, Watchdog: c.watchdog}
		if got := s.watchdog(); got != c.want {
			t.Errorf("timeout %v watchdog %v: guest watchdog %v, want %v", c.timeout, c.watchdog, got, c.want)
		}
	}
	if got := (KernelSpec{}).suites(); len(got) != 2 || got[0] != "trixie-backports" || got[1] != "sid" {
		t.Errorf("default suites %v", got)
	}
	if got := (KernelSpec{Suite: "forky"}).suites(); len(got) != 1 || got[0] != "forky" {
		t.Errorf("explicit suite %v", got)
	}
}

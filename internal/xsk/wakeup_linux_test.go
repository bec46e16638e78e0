package xsk

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestZeroCopyNeedsWakeup: the protection against the threaded-NAPI hang (docs/lab.md). A zero-copy config
// without need_wakeup is refused with the reason and both ways out; auto mode without need_wakeup binds copy mode;
// with need_wakeup every mode binds as asked.
func TestZeroCopyNeedsWakeup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode, cfg.NeedWakeup = ModeZeroCopy, false
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "zero-copy without need_wakeup is refused") ||
		!strings.Contains(err.Error(), "keep need_wakeup on, or bind in copy mode") {
		t.Fatalf("Validate(zero-copy, no need_wakeup) = %v; want a refusal that says what to do", err)
	}
	cfg.HazardousZeroCopyWithoutWakeup = true
	if err := cfg.Validate(); err != nil || bindFlags(cfg) != unix.XDP_ZEROCOPY {
		t.Fatalf("the lab's hang reproduction cannot bind zero-copy without need_wakeup: %v, flags %#x", err, bindFlags(cfg))
	}
	cfg.HazardousZeroCopyWithoutWakeup = false
	for _, c := range []struct {
		mode       Mode
		needWakeup bool
		want       uint16
	}{
		{ModeAuto, false, unix.XDP_COPY},
		{ModeCopy, false, unix.XDP_COPY},
		{ModeAuto, true, unix.XDP_USE_NEED_WAKEUP},
		{ModeCopy, true, unix.XDP_COPY | unix.XDP_USE_NEED_WAKEUP},
		{ModeZeroCopy, true, unix.XDP_ZEROCOPY | unix.XDP_USE_NEED_WAKEUP},
	} {
		cfg.Mode, cfg.NeedWakeup = c.mode, c.needWakeup
		if err := cfg.Validate(); err != nil {
			t.Errorf("%v need_wakeup=%v: %v", c.mode, c.needWakeup, err)
		}
		if got := bindFlags(cfg); got != c.want {
			t.Errorf("%v need_wakeup=%v binds with flags %#x, want %#x", c.mode, c.needWakeup, got, c.want)
		}
	}
}

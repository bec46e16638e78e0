package xsk_test

import (
	"testing"

	"github.com/napilab/napilab/internal/xsk"
)

func TestDefaultConfig(t *testing.T) {
	cfg := xsk.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
	if got := cfg.UMEMSize(); got != 4<<20 {
		t.Errorf("default UMEM is %d bytes, want 4 MiB (a few MiB, under an 8 MiB RLIMIT_MEMLOCK)", got)
	}
	if cfg.Mode != xsk.ModeAuto || !cfg.NeedWakeup {
		t.Errorf("default mode %v need_wakeup %v, want auto with need_wakeup", cfg.Mode, cfg.NeedWakeup)
	}
	if got := cfg.MaxRXLen(); got != 4096-256 {
		t.Errorf("MaxRXLen = %d, want %d", got, 4096-256)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*xsk.Config)
		want   string // "" for valid
	}{
		{"frame size 2048", func(c *xsk.Config) { c.FrameSize = 2048 }, ""},
		{"headroom at the limit", func(c *xsk.Config) { c.FrameSize, c.Headroom = 2048, 278 }, ""},
		{"tiny UMEM", func(c *xsk.Config) { c.FrameCount, c.FillSize, c.TXSize, c.CompletionSize = 64, 2048, 2048, 2048 },
			"UMEM too small: 64 frames cannot cover the fill ring (2048) plus the TX ring (2048); use at least 4096 frames"},
		{"UMEM one short", func(c *xsk.Config) { c.FrameCount, c.FillSize, c.TXSize = 512, 512, 256 },
			"UMEM too small: 512 frames cannot cover the fill ring (512) plus the TX ring (256); use at least 1024 frames"},
		{"frame size", func(c *xsk.Config) { c.FrameSize = 3000 },
			"frame size 3000 is not supported: use 2048 or 4096"},
		{"frame count not power of two", func(c *xsk.Config) { c.FrameCount = 1000 },
			"frame count 1000 is not a power of two: use 1024"},
		{"frame count zero", func(c *xsk.Config) { c.FrameCount = 0 },
			"frame count 0 is not a power of two: use 1"},
		{"frame count huge", func(c *xsk.Config) { c.FrameCount = 1 << 21 },
			"frame count 2097152 is larger than napilab allows: use at most 1048576"},
		{"fill ring", func(c *xsk.Config) { c.FillSize = 300 },
			"fill ring size 300 is not a power of two: use 512"},
		{"completion ring", func(c *xsk.Config) { c.CompletionSize = 0 },
			"completion ring size 0 is not a power of two: use 1"},
		{"RX ring", func(c *xsk.Config) { c.RXSize = 513 },
			"RX ring size 513 is not a power of two: use 1024"},
		{"TX ring too big", func(c *xsk.Config) { c.TXSize = 1 << 17 },
			"TX ring size 131072 is larger than napilab allows: use at most 65536"},
		{"completion smaller than TX", func(c *xsk.Config) { c.CompletionSize = 256 },
			"completion ring (256) is smaller than the TX ring (512), so frames in flight could not all complete; use a completion ring of at least 512"},
		{"headroom", func(c *xsk.Config) { c.FrameSize, c.Headroom = 2048, 279 },
			"headroom 279 leaves no room for a 1514-byte Ethernet frame in 2048-byte frames (the kernel keeps 256 bytes too); use at most 278"},
		{"mode", func(c *xsk.Config) { c.Mode = 7 },
			"bind mode 7 is unknown: use auto, copy or zero-copy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := xsk.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("want %q, got a valid config", tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("got  %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[xsk.Mode]string{xsk.ModeAuto: "auto", xsk.ModeCopy: "copy", xsk.ModeZeroCopy: "zero-copy", 9: "Mode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sysknob"
)

type noiseCmd struct {
	CPUs     string        `name:"cpus" placeholder:"LIST" help:"CPUs to measure, all at once, e.g. 0,1 or 2-5 (default: every CPU this process may use)."`
	Duration time.Duration `default:"2s" help:"How long each thread spins (100ms to 10m)."`
	Min      time.Duration `default:"10us" help:"The shortest gap between two clock readings that counts (1us to 100ms)."`
	JSON     bool          `name:"json" help:"Print JSON."`
}

var noiseFlags = map[string]string{"cpus": "--cpus", "duration": "--duration", "min": "--min"}

func (c *noiseCmd) Run(ctx context.Context, std *stdio) error {
	o := rr.NoiseOptions{Duration: c.Duration, Min: c.Min}
	if c.CPUs == "" {
		usable, err := rr.UsableCPUs()
		if err != nil {
			return err
		}
		o.CPUs = usable.List()
	} else {
		set, err := sysknob.ParseCPUList(c.CPUs)
		if err != nil {
			return fmt.Errorf("--cpus %q is not a CPU list (%v): give CPU numbers and ranges, e.g. 0,1 or 2-5", c.CPUs,
				err)
		}
		o.CPUs = set.List()
	}
	res, err := rr.MeasureNoise(ctx, o)
	err = kernel.RenameFields(err, noiseFlags)
	if len(res.CPUs) == 0 {
		return err
	}
	if c.JSON {
		if jerr := jsonOut(std.out, res); jerr != nil {
			return jerr
		}
		return err
	}
	report.Noise(std.out, res)
	return err
}

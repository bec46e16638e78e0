package report

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/napilab/napilab/internal/hist"
)

// pngDPI makes PNGs sharp enough for an issue or a mail: a 6.4 × 3.6 in figure is 922 × 518 pixels.
const pngDPI = 144

// figures lists every figure of the page, in page order.
func (v *view) figures() []*figure {
	s := v.sections()
	fs := s.summary
	for _, l := range s.loads {
		fs = append(fs, l...)
	}
	return append(fs, s.trace...)
}

// WritePNGs writes each plot of the page as DIR/<figure id>.png, creating dir, and returns the files written. A
// figure with nothing to draw has no file.
func WritePNGs(dir string, runs []*Run) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range newView(runs).figures() {
		if f.plot == nil {
			continue
		}
		c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(f.w, f.h), vgimg.UseDPI(pngDPI))}
		if err := f.render(draw.New(c)); err != nil {
			continue // the page says why
		}
		path := filepath.Join(dir, f.ID+".png")
		if err := writeFile(path, func(w *os.File) error { _, err := c.WriteTo(w); return err }); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// ErrNoHistograms says that a result carries no latency histograms to export.
var ErrNoHistograms = errors.New("the result carries no latency histograms (napilab before they were recorded): run the sweep again with this napilab")

// WriteHgrms writes each measured cell's latency histogram in HdrHistogram's .hgrm text format, values in
// microseconds, as DIR/[<run>_]<mode>_<load>_rep<N>.hgrm, and returns the files written. Cells without figures
// have none; a run with no histogram at all is ErrNoHistograms.
func WriteHgrms(dir string, runs []*Run) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	v := newView(runs)
	var files []string
	for ri, r := range runs {
		prefix := ""
		if len(runs) > 1 {
			prefix = slug(v.labels[ri]) + "_"
		}
		n := 0
		for _, c := range r.Cells {
			if c.Client == nil || c.Client.LatencyHDR == "" {
				continue
			}
			b, err := hist.Decode(c.Client.LatencyHDR)
			if err != nil {
				return files, fmt.Errorf("%s, %s at %s: %w", r.Name, c.Mode, c.Load.Short, err)
			}
			path := filepath.Join(dir, fmt.Sprintf("%s%s_%s_rep%d.hgrm", prefix, slug(c.Mode), slug(c.Load.Short), c.Rep))
			if err := writeFile(path, func(w *os.File) error { return b.WriteHgrm(w, 1e3) }); err != nil {
				return files, err
			}
			files = append(files, path)
			n++
		}
		if n == 0 {
			return files, fmt.Errorf("%s: %w", r.Name, ErrNoHistograms)
		}
	}
	return files, nil
}

// writeFile writes path through fill, so that a failure leaves no half-written file behind.
func writeFile(path string, fill func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := errors.Join(fill(tmp), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteFile writes the page of runs to path, whole or not at all.
func WriteFile(path string, runs []*Run) error {
	return writeFile(path, func(w *os.File) error { return WritePage(w, runs) })
}

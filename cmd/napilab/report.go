package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/napilab/napilab/internal/report"
)

type reportCmd struct {
	Results []string `arg:"" name:"RESULT" help:"Result files written by napilab demo --json; several are compared side by side."`
	Out     string   `short:"o" required:"" placeholder:"FILE" help:"Write the report page (one self-contained HTML file) to FILE."`
	PNG     string   `name:"png" placeholder:"DIR" help:"Also write each plot as a PNG into DIR."`
	Hgrm    string   `name:"hgrm" placeholder:"DIR" help:"Also write each cell's latency histogram in HdrHistogram's .hgrm format (µs) into DIR."`
}

func (r *reportCmd) Run(std *stdio) error {
	var runs []*report.Run
	for _, path := range r.Results {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		run, err := report.Read(filepath.Base(path), raw)
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	return writeReports(std.out, runs, r.Out, r.PNG, r.Hgrm)
}

// writeReports writes the page and the optional exports, saying what it wrote.
func writeReports(w io.Writer, runs []*report.Run, page, pngDir, hgrmDir string) error {
	var errs []error
	if page != "" {
		if err := report.WriteFile(page, runs); err != nil {
			errs = append(errs, fmt.Errorf("report page: %w", err))
		} else {
			fmt.Fprintf(w, "report: wrote %s\n", page)
		}
	}
	if pngDir != "" {
		files, err := report.WritePNGs(pngDir, runs)
		if err != nil {
			errs = append(errs, fmt.Errorf("--png: %w", err))
		}
		fmt.Fprintf(w, "report: wrote %d PNG plots into %s\n", len(files), pngDir)
	}
	if hgrmDir != "" {
		files, err := report.WriteHgrms(hgrmDir, runs)
		if err != nil {
			errs = append(errs, fmt.Errorf("--hgrm: %w", err))
		}
		fmt.Fprintf(w, "report: wrote %d .hgrm histograms into %s\n", len(files), hgrmDir)
	}
	return errors.Join(errs...)
}

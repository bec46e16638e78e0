package napi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
)

// SystemdServices controls units through systemctl: the way a unit's own configuration (and its dependencies)
// are respected when it is stopped and started again. Without systemd (no /run/systemd/system) there is no
// unit to stop: napilab cannot stop and restart a daemon the same way its init system would, so it says so.
type SystemdServices struct{}

func systemd() error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return &kernel.UnsupportedError{Feature: "stopping a service for the run",
			Err: errors.New("this machine is not run by systemd, so napilab cannot stop and restart a daemon " +
				"as its init system would")}
	}
	return nil
}

// Active reports whether unit runs.
func (SystemdServices) Active(unit string) (bool, error) {
	if err := systemd(); err != nil {
		return false, err
	}
	err := exec.Command("systemctl", "is-active", "--quiet", unit).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee):
		return false, nil // inactive, failed or unknown: not running
	}
	return false, fmt.Errorf("systemctl is-active %s: %w", unit, err)
}

// Stop stops unit.
func (SystemdServices) Stop(unit string) error { return systemctl("stop", unit) }

// Start starts unit.
func (SystemdServices) Start(unit string) error { return systemctl("start", unit) }

func systemctl(verb, unit string) error {
	if err := systemd(); err != nil {
		return err
	}
	out, err := exec.Command("systemctl", verb, unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s %s: %w: %s", verb, unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

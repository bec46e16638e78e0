package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/napilab/napilab/internal/napi"
)

// WatchdogArgs are the arguments that make napilab's executable the watchdog of a journal; the command line
// implements them (`napilab agent --watchdog JOURNAL`).
func WatchdogArgs(journal string) []string {
	return []string{"agent", "--watchdog", journal}
}

// StartWatchdog starts exe as the watchdog of journal, detached: in a session of its own, so that neither the
// agent's death nor the end of its ssh session (SIGHUP to the session) takes it along, with its output in a
// log beside the journal. The agent reaps it if it exits first.
func StartWatchdog(exe, journal string) (*os.Process, error) {
	log, err := os.OpenFile(napi.WatchdogLog(journal), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the watchdog's log: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(exe, WatchdogArgs(journal)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = filepath.Dir(journal)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s as the watchdog: %w", exe, err)
	}
	go func() { _ = cmd.Wait() }()
	return cmd.Process, nil
}

var self struct {
	once sync.Once
	path string
	sum  string
	err  error
}

// Self returns the path of the running executable and its sha256: what the controller copies to a remote host
// and the name it is cached under there.
func Self() (path, sha string, err error) {
	self.once.Do(func() {
		self.path, self.err = os.Executable()
		if self.err != nil {
			return
		}
		f, err := os.Open(self.path)
		if err != nil {
			self.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			self.err = err
			return
		}
		self.sum = hex.EncodeToString(h.Sum(nil))
	})
	return self.path, self.sum, self.err
}

//go:build !linux

package rr

import (
	"errors"
	"time"
)

var errNoiseNotLinux = errors.New("napilab noise reads Linux's /proc: it runs on Linux only")

type schedReader struct{}

func openSchedReader() (*schedReader, error) { return nil, errNoiseNotLinux }

func (r *schedReader) readBefore() {}

func (r *schedReader) readAfter() {}

func (r *schedReader) delta() (time.Duration, uint64, error) { return 0, 0, errNoiseNotLinux }

func (r *schedReader) close() {}

func stillOn(int) error { return errNoiseNotLinux }

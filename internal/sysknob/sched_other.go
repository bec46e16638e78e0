//go:build !linux

package sysknob

// Sched returns kernel.ErrNotSupported: thread scheduling is Linux's.
func (r *Root) Sched(int) (Sched, error) { return Sched{}, errNotLinux }

// SetFIFO returns kernel.ErrNotSupported.
func (r *Root) SetFIFO(int, int) error { return errNotLinux }

// SetAffinity returns kernel.ErrNotSupported.
func (r *Root) SetAffinity(int, CPUSet) error { return errNotLinux }

// RestoreSched returns kernel.ErrNotSupported.
func (r *Root) RestoreSched(Sched) error { return errNotLinux }

package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

const recordVersion = 1

// Record is the state file of a named testbed (<StateDir>/<name>.json). It is written before the first
// namespace exists and updated as pieces are made, so Down and Reap can always find what a process created,
// even one that died half-way through Up, and never touch what it did not create.
type Record struct {
	Version  int            `json:"version"`
	Name     string         `json:"name"`
	Topology Topology       `json:"topology"`
	Owner    kernel.Process `json:"owner"` // the process that ran Up
	Created  time.Time      `json:"created"`
	Complete bool           `json:"complete"` // false while Up is still building the testbed
	A        HostRecord     `json:"a"`
	B        HostRecord     `json:"b"`
}

// HostRecord is what a Record keeps about one host.
type HostRecord struct {
	Namespace string `json:"namespace"`
	// Inode is the namespace's nsfs inode, 0 until the namespace exists. Down unmounts /run/netns/<Namespace>
	// only while it still refers to this namespace.
	Inode   uint64       `json:"inode,omitempty"`
	Link    string       `json:"link"`
	Ifindex int          `json:"ifindex,omitempty"`
	MAC     string       `json:"mac,omitempty"`
	IPv4    netip.Prefix `json:"ipv4"`
	IPv6    netip.Prefix `json:"ipv6"`
}

// ParseRecord decodes and checks a state file. It rejects anything Down could not act on safely, such as a
// namespace name that is not <name>-a or <name>-b.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("decode testbed state: %w", err)
	}
	if r.Version != recordVersion {
		return Record{}, fmt.Errorf("testbed state version %d is not %d: it was written by another napilab version",
			r.Version, recordVersion)
	}
	if err := ValidateName(r.Name); err != nil {
		return Record{}, err
	}
	topo, err := r.Topology.Resolve()
	if err != nil {
		return Record{}, err
	}
	if topo.Name != r.Name || !topo.Lifetime.Named() {
		return Record{}, fmt.Errorf("testbed state %q describes topology %q with lifetime %s", r.Name, topo.Name, topo.Lifetime)
	}
	na, nb := namespaceNames(r.Name)
	if r.A.Namespace != na || r.B.Namespace != nb {
		return Record{}, fmt.Errorf("testbed state %q names namespaces %q and %q instead of %q and %q",
			r.Name, r.A.Namespace, r.B.Namespace, na, nb)
	}
	if r.Owner.PID <= 0 {
		return Record{}, fmt.Errorf("testbed state %q has no owner pid", r.Name)
	}
	return r, nil
}

// Store is a directory of testbed state files.
type Store struct{ Dir string }

// DefaultStore is where napilab records its named testbeds.
var DefaultStore = Store{Dir: DefaultStateDir}

func (s Store) path(name string) string { return filepath.Join(s.Dir, name+".json") }

// Get reads the record of testbed name. A missing testbed gives an error matching os.ErrNotExist.
func (s Store) Get(name string) (Record, error) {
	if err := ValidateName(name); err != nil {
		return Record{}, err
	}
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, kernel.WithHint(&kernel.SentenceError{Msg: fmt.Sprintf("no testbed named %q", name), Kind: fs.ErrNotExist},
			"`napilab testbed show` lists the testbeds")
	}
	if err != nil {
		return Record{}, fmt.Errorf("read testbed state: %w", err)
	}
	r, err := ParseRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", s.path(name), err)
	}
	if r.Name != name {
		return Record{}, fmt.Errorf("%s records testbed %q", s.path(name), r.Name)
	}
	return r, nil
}

// List returns the records in the store, sorted by name. Files it cannot parse are reported in the error,
// joined, beside the records it could read. A missing directory is an empty store.
func (s Store) List() ([]Record, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list testbeds: %w", err)
	}
	var recs []Record
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		r, err := s.Get(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return recs, errors.Join(errs...)
}

// reserve creates the state file of r exclusively: the file is the claim on the name.
func (s Store) reserve(r *Record) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("create testbed state directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(r.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return kernel.WithHint(&kernel.SentenceError{Msg: fmt.Sprintf("testbed name %q is taken", r.Name), Kind: fs.ErrExist},
			"pick another name, or remove that testbed with `napilab testbed down "+r.Name+"`")
	}
	if err != nil {
		return fmt.Errorf("record testbed %q: %w", r.Name, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.path(r.Name))
		return fmt.Errorf("record testbed %q: %w", r.Name, err)
	}
	return nil
}

// update replaces the state file of r atomically, so a crash leaves the old or the new record, never half.
func (s Store) update(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(r.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record testbed %q: %w", r.Name, err)
	}
	if err := os.Rename(tmp, s.path(r.Name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record testbed %q: %w", r.Name, err)
	}
	return nil
}

func (s Store) remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

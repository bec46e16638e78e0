package sysknob

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// MaxCPUs bounds the CPU numbers a CPUSet accepts. The kernel's NR_CPUS tops out at 8192 on x86-64; the margin
// keeps a typo such as "0-4000000000" from allocating gigabytes.
const MaxCPUs = 1 << 14

// CPUSet is a set of CPU numbers, any size (machines with more than 64 or 1024 CPUs included).
// The zero value is the empty set. Sets are values: the methods that change a set return a new one.
type CPUSet struct {
	words []uint64 // bit i of words[i/64] is CPU i; no trailing zero words
}

// CPUs returns the set holding the given CPUs. It panics on a negative CPU or one at or above MaxCPUs, which is
// a programming error; parse user input with ParseCPUList instead.
func CPUs(cpus ...int) CPUSet {
	var s CPUSet
	for _, c := range cpus {
		if c < 0 || c >= MaxCPUs {
			panic(fmt.Sprintf("sysknob.CPUs: CPU %d out of range [0, %d)", c, MaxCPUs))
		}
		s = s.with(c)
	}
	return s
}

// CPURange returns the set first..last inclusive (empty if last < first); the same bounds as CPUs apply.
func CPURange(first, last int) CPUSet {
	if last < first {
		return CPUSet{}
	}
	if first < 0 || last >= MaxCPUs {
		panic(fmt.Sprintf("sysknob.CPURange: %d-%d out of range [0, %d)", first, last, MaxCPUs))
	}
	words := make([]uint64, last/64+1)
	for c := first; c <= last; c++ {
		words[c/64] |= 1 << (uint(c) % 64)
	}
	return CPUSet{words: words}
}

func (s CPUSet) with(cpu int) CPUSet {
	w := cpu / 64
	words := s.words
	if w >= len(words) {
		grown := make([]uint64, w+1)
		copy(grown, words)
		words = grown
	} else {
		words = append([]uint64(nil), words...)
	}
	words[w] |= 1 << (uint(cpu) % 64)
	return CPUSet{words: words}
}

// Has reports whether cpu is in the set.
func (s CPUSet) Has(cpu int) bool {
	if cpu < 0 || cpu/64 >= len(s.words) {
		return false
	}
	return s.words[cpu/64]&(1<<(uint(cpu)%64)) != 0
}

// Len returns the number of CPUs in the set.
func (s CPUSet) Len() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// IsEmpty reports whether the set has no CPU.
func (s CPUSet) IsEmpty() bool { return len(s.words) == 0 }

// Max returns the highest CPU in the set, or -1 for the empty set.
func (s CPUSet) Max() int {
	if len(s.words) == 0 {
		return -1
	}
	last := len(s.words) - 1
	return last*64 + 63 - bits.LeadingZeros64(s.words[last])
}

// List returns the CPUs in ascending order.
func (s CPUSet) List() []int {
	out := make([]int, 0, s.Len())
	for i, w := range s.words {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, i*64+b)
			w &^= 1 << uint(b)
		}
	}
	return out
}

// Equal reports whether both sets hold the same CPUs.
func (s CPUSet) Equal(o CPUSet) bool {
	if len(s.words) != len(o.words) {
		return false
	}
	for i := range s.words {
		if s.words[i] != o.words[i] {
			return false
		}
	}
	return true
}

// Minus returns the CPUs of s that are not in o.
func (s CPUSet) Minus(o CPUSet) CPUSet {
	words := append([]uint64(nil), s.words...)
	for i := range words {
		if i < len(o.words) {
			words[i] &^= o.words[i]
		}
	}
	return CPUSet{words: trim(words)}
}

func trim(words []uint64) []uint64 {
	for len(words) > 0 && words[len(words)-1] == 0 {
		words = words[:len(words)-1]
	}
	if len(words) == 0 {
		return nil
	}
	return words
}

// String formats the set in the kernel's list format, e.g. "0-3,5" (the format of smp_affinity_list,
// Cpus_allowed_list and /sys/devices/system/cpu/online). The empty set is "".
func (s CPUSet) String() string {
	var b strings.Builder
	cpus := s.List()
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Mask formats the set in the kernel's hex mask format: 32-bit groups of eight hex digits separated by commas,
// most significant first, the first group without leading zeros (e.g. "3", "ff,ffffffff"). The empty set is "0".
// The kernel accepts this shape wherever it prints one (rps_cpus, workqueue cpumask, smp_affinity).
func (s CPUSet) Mask() string {
	if s.IsEmpty() {
		return "0"
	}
	groups := (s.Max() + 32) / 32
	var b strings.Builder
	for g := groups - 1; g >= 0; g-- {
		v := uint32(s.words[g/2] >> (32 * uint(g%2)))
		if g == groups-1 {
			b.WriteString(strconv.FormatUint(uint64(v), 16))
			continue
		}
		fmt.Fprintf(&b, ",%08x", v)
	}
	return b.String()
}

// MarshalText encodes the set in list format, so a CPUSet journals as "0-3,5".
func (s CPUSet) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes list format.
func (s *CPUSet) UnmarshalText(text []byte) error {
	v, err := ParseCPUList(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseCPUList parses the kernel's CPU list format: comma-separated CPUs and ranges, "0-3,5", with the optional
// stride form "0-15:2/4" (the first 2 of every group of 4) that the kernel's bitmap_parselist accepts.
// Surrounding white space is ignored; an empty string is the empty set.
func ParseCPUList(text string) (CPUSet, error) {
	text = strings.TrimSpace(text)
	var words []uint64
	if text == "" {
		return CPUSet{}, nil
	}
	for _, part := range strings.Split(text, ",") {
		first, last, used, group, err := parseRange(part)
		if err != nil {
			return CPUSet{}, fmt.Errorf("parse CPU list %q: %w", text, err)
		}
		if need := last/64 + 1; need > len(words) {
			words = append(words, make([]uint64, need-len(words))...)
		}
		for c := first; c <= last; c++ {
			if (c-first)%group < used {
				words[c/64] |= 1 << (uint(c) % 64)
			}
		}
	}
	return CPUSet{words: trim(words)}, nil
}

// parseRange parses "N", "N-M" or "N-M:used/group".
func parseRange(part string) (first, last, used, group int, err error) {
	rng, stride, hasStride := strings.Cut(part, ":")
	lo, hi, isRange := strings.Cut(rng, "-")
	if first, err = parseCPU(lo); err != nil {
		return
	}
	last = first
	if isRange {
		if last, err = parseCPU(hi); err != nil {
			return
		}
		if last < first {
			return 0, 0, 0, 0, fmt.Errorf("range %q runs backwards", part)
		}
	}
	used, group = 1, 1
	if hasStride {
		u, g, ok := strings.Cut(stride, "/")
		if !isRange || !ok {
			return 0, 0, 0, 0, fmt.Errorf("stride %q needs the form N-M:used/group", part)
		}
		if used, err = strconv.Atoi(u); err == nil {
			group, err = strconv.Atoi(g)
		}
		if err != nil || used <= 0 || group <= 0 || used > group {
			return 0, 0, 0, 0, fmt.Errorf("stride %q needs 0 < used <= group", part)
		}
	}
	return first, last, used, group, nil
}

func parseCPU(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= MaxCPUs {
		return 0, fmt.Errorf("CPU %s is beyond the %d CPUs napilab handles", s, MaxCPUs)
	}
	return n, nil
}

// ParseCPUMask parses the kernel's hex mask format: groups of at most eight hex digits separated by commas,
// most significant first ("3", "00000000,00000003", "ff,ffffffff"). Surrounding white space is ignored.
func ParseCPUMask(text string) (CPUSet, error) {
	text = strings.TrimSpace(text)
	groups := strings.Split(text, ",")
	if len(groups)*32 > MaxCPUs+31 {
		return CPUSet{}, fmt.Errorf("parse CPU mask %q: more than %d CPUs", shorten(text), MaxCPUs)
	}
	words := make([]uint64, (len(groups)+1)/2)
	for i, g := range groups {
		v, err := strconv.ParseUint(g, 16, 32)
		if err != nil || len(g) > 8 || strings.HasPrefix(g, "+") {
			return CPUSet{}, fmt.Errorf("parse CPU mask %q: group %q is not 1 to 8 hex digits", shorten(text), g)
		}
		pos := len(groups) - 1 - i // 32-bit group index, least significant = 0
		words[pos/2] |= v << (32 * uint(pos%2))
	}
	return CPUSet{words: trim(words)}, nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

package hist

// Interval keeps one Recorder per reporting interval plus a cumulative one, the way a benchmark prints a line
// every second and a total at the end. Like a Recorder it has no locks: the goroutine that measures records,
// rotates and reads.
type Interval struct {
	cur, prev, total *Recorder
}

// NewInterval returns an Interval whose recorders all use cfg.
func NewInterval(cfg Config) (*Interval, error) {
	var rs [3]*Recorder
	for i := range rs {
		r, err := New(cfg)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	return &Interval{cur: rs[0], prev: rs[1], total: rs[2]}, nil
}

// Record adds a latency to the open interval. It never allocates.
func (iv *Interval) Record(ns int64) { iv.cur.Record(ns) }

// Current is the open interval.
func (iv *Interval) Current() *Recorder { return iv.cur }

// Cumulative holds every closed interval: call Rotate once more at the end to include the last one.
func (iv *Interval) Cumulative() *Recorder { return iv.total }

// Rotate closes the open interval, adds it to Cumulative and opens an empty one. It returns the closed interval,
// which stays valid until the next Rotate. The two interval recorders take turns, so Rotate allocates nothing;
// it costs one pass over the histogram's counts (about 25,000 for the default Config) to merge and one to clear.
func (iv *Interval) Rotate() *Recorder {
	_ = iv.total.Merge(iv.cur) // cannot fail: NewInterval gave all three recorders the same Config
	iv.prev.Reset()
	iv.cur, iv.prev = iv.prev, iv.cur
	return iv.prev
}

// Package hist records round-trip latencies and reports them two ways: as true percentiles, and as the "pN"
// columns of xsk_rr, the tool behind the threaded-busy-poll series' published numbers.
//
// True percentiles come from a Recorder, an HDR histogram (github.com/HdrHistogram/hdrhistogram-go): buckets are
// log-linear, so with 3 significant digits any value from 1 ns to 10 s lands in a bucket no wider than 0.1 % of
// it, in about 200 KiB, and Record is an index computation and an increment. A percentile here is the nearest
// rank: the smallest recorded value at or above which lie at least p % of the samples (rank ceil(p/100 * N)),
// reported as the top of its bucket, so it is never below the true sample and less than 0.1 % above it. Min, max,
// mean and standard deviation are kept exactly beside the buckets. Values outside the configured range are
// clamped to it and counted, never dropped.
//
// xsk_rr's "pN" is not a percentile. It keeps 20000 buckets of 100 ns (the last one takes everything from
// 1.9999 ms up) and prints, for p = 5, 50, 95 and 99 in turn, the truncated mean bucket of the lowest p % of the
// samples, clipping its histogram in place as it goes, so each column also depends on the ones before. Its "avg"
// is a running mean truncated at every sample: after n samples it falls for any sample below it but rises only
// for one more than n ns above it, so it sinks toward the fast end (the published sample prints avg below p5).
// XskRR reproduces all of this bit for bit, so that napilab's numbers can sit beside the published
// ones; napilab's own reports use Recorder.
//
// Nothing here locks. A recorder belongs to the goroutine that measures, which records, rotates intervals and
// reads summaries itself; other goroutines get copies (a Summary, or a Recorder merged into one of their own).
package hist

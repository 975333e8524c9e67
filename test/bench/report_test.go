package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	if got := percentiles(nil); got != (pcts{}) {
		t.Errorf("no samples: %+v", got)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(ds)
	if got.p50 != 50 || got.p95 != 95 || got.p99 != 99 || got.max != 100 {
		t.Errorf("1..100 ms: %+v", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentiles sorted its input in place")
	}
	if got := percentiles([]time.Duration{7 * time.Millisecond}); got.p50 != 7 || got.p99 != 7 {
		t.Errorf("one sample: %+v", got)
	}
}

func TestBarChartIsWellFormedSVG(t *testing.T) {
	for _, ss := range [][]series{
		{{"a & b", []float64{1, 2.5}}, {"<c>", []float64{3, 0}}},
		{{"empty", nil}},
	} {
		svg := barChart("t <1>", "ms", []string{"P50", "P99"}, ss)
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("invalid SVG: %v\n%s", err, svg)
				}
				break
			}
		}
		if !strings.Contains(svg, "<rect") {
			t.Error("no bars")
		}
	}
}

func TestLinesAreMachineReadable(t *testing.T) {
	r := report{
		lock:       lockResult{on: []time.Duration{3 * time.Millisecond}, off: []time.Duration{2 * time.Millisecond}},
		throughput: []throughputResult{{replicas: 3, targets: 10, rrs: 10, elapsed: time.Second, requests: 100, reconciles: 25, peakRSS: []float64{40, 50}}},
	}
	for _, line := range []string{r.lock.line(), r.handoff.line(), r.admission.line(), r.throughput[0].line(), r.faults.line(), r.history.line(), r.history.budgetLine()} {
		f := strings.Fields(line)
		if f[0] != "bench" || len(f) < 3 {
			t.Errorf("bad line %q", line)
		}
		for _, kv := range f[2:] {
			if k, v, ok := strings.Cut(kv, "="); !ok || k == "" || v == "" {
				t.Errorf("%q: bad field %q", line, kv)
			}
		}
	}
	if got := r.throughput[0].line(); got != "bench throughput replicas=3 targets=10 rrs_per_s=10.0 api_requests_per_rr=10.0 peak_rss_mb=50 fleet_reconciles_per_rr=2.50" {
		t.Errorf("throughput line: %q", got)
	}
	if !strings.Contains(r.markdown(), "## 5. Safety under faults") {
		t.Error("markdown misses a section")
	}
}

func TestBenchstatFormat(t *testing.T) {
	got := benchstat("text\nbench lock_overhead p50_on_ms=21.4 added_p95_ms=-4.1\nbench throughput replicas=3 targets=1000 rrs_per_s=40.4\nbench faults duplicates=0 skewed_replica=+10s recovery_p95_s=6.9\n")
	for _, want := range []string{
		"BenchmarkLock_overhead 1 21.4 p50_on_ms -4.1 added_p95_ms\n",
		"BenchmarkThroughput/replicas=3 1 1000 targets 40.4 rrs_per_s\n",
		"BenchmarkFaults 1 0 duplicates +10 skewed_replica 6.9 recovery_p95_s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("benchstat output lacks %q:\n%s", want, got)
		}
	}
}

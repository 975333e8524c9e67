package main

import (
	"strings"
	"testing"
	"time"
)

func TestFleetLineAndMarkdown(t *testing.T) {
	f := fleetResult{
		replicas: 100, targets: 1000, rrs: 2000, reconciles: 2200,
		storm: 100 * time.Second, stormRequests: 20000 + 2500, fixedMeasure: 25, fixedPaper: paperFixed(100),
		apiserverStorm: 15000, idle: 60 * time.Second, memberWrites: 1200,
		rebalance: []time.Duration{10 * time.Second, 16 * time.Second}, rebalanceHeld: []time.Duration{29 * time.Second}, peakRSS: []float64{50, 70, 60},
	}
	want := "bench fleet replicas=100 rrs=2000 duplicates=0 fleet_reconciles_per_rr=1.10 api_requests_per_rr=10.0 apiserver_requests_per_s=150.0 member_lease_writes_per_s=20.0 rebalance_p95_s=16.0 peak_rss_mb_per_replica=70 waited_on_dead_lease=1 waited_on_dead_lease_max_s=29.0"
	if got := f.line(); got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	if got := paperFixed(100); got < 23.3 || got > 23.4 {
		t.Errorf("paper fixed cost of 100 replicas: %.2f, want 20 renewals/s + 3.3 sweeps/s", got)
	}
	r := report{ran: map[string]bool{"fleet": true}, fleet: []fleetResult{f}}
	md := r.markdown()
	for _, want := range []string{
		"## Fleet: many orchestrator processes on the ring",
		"fleet reconciles/RR 1.10 (<= 1.3: met)",
		"API requests/RR 10.0 (<= 8: **NOT met**)",
		"rebalance P95 16.0 s (<= ring lease duration + 2 s = 17s: met)",
		"1 object(s) waited on the killed replica's target Lease instead: at most 29.0 s",
		"7% above it (within 20%: met)",
		"| 60 / 70 |",
		"No fleet of this run met every bound.",
		want,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// Within every bound once the per-replica costs are taken off: the
	// added replicas' start-up (at the median) and discovery.
	within := f
	within.replicas, within.added, within.startupRequests, within.stormDiscovery = 10, 2, []float64{10, 11, 500}, 4000-22
	if got := within.requestsPerRR(); got != 8.0 {
		t.Errorf("requests per RR less start-up and discovery = %.3f, want 8.0", got)
	}
	both := report{ran: map[string]bool{"fleet": true}, fleet: []fleetResult{within, f}}
	if md := both.markdown(); !strings.Contains(md, "within every bound: **10 replicas**") {
		t.Error("the largest fleet within bounds is not named")
	}
	f.duplicates, f.worst = 1, "app-0001"
	if md := (&report{ran: map[string]bool{"fleet": true}, fleet: []fleetResult{f}}).markdown(); !strings.Contains(md, "INVARIANT BROKEN") {
		t.Error("a duplicate is not flagged")
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("10, 25,50")
	if err != nil || len(got) != 3 || got[0] != 10 || got[1] != 25 || got[2] != 50 {
		t.Errorf("parseCounts: %v %v", got, err)
	}
	for _, bad := range []string{"", "0", "x", "10,,20"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
}

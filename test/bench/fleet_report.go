package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// Bounds of the fleet section.
const (
	fleetReconcilesBound = 1.3
	fleetRequestsBound   = 8.0
	fleetFixedTolerance  = 0.2 // measured fixed cost within 20% of report.go's projection
)

var fleetRebalanceBound = fleetRingDuration + 2*time.Second

// parseCounts reads "10,25,50" as positive integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// fleetSizesFlag is --fleet-replicas's counts, or def if it is empty.
func fleetSizesFlag(flagValue string, def []int) []int {
	if flagValue == "" {
		return def
	}
	counts, err := parseCounts(flagValue)
	if err != nil {
		fatal(fmt.Errorf("--fleet-replicas: %w", err))
	}
	return counts
}

// invariantBroken says which section saw two active WFEs on one target
// (faults, fleet), or "".
func (r *report) invariantBroken() string {
	if r.faults.duplicates != 0 {
		return fmt.Sprintf("%d duplicate(s): %s", r.faults.duplicates, r.faults.worst)
	}
	for _, f := range r.fleet {
		if f.duplicates != 0 {
			return fmt.Sprintf("fleet of %d: %d duplicate(s): %s", f.replicas, f.duplicates, f.worst)
		}
	}
	return ""
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**NOT met**"
}

// fixedRatio is the idle fleet's measured requests/s over the paper figure.
func (r fleetResult) fixedRatio() float64 { return safeDiv(r.fixedMeasure, r.fixedPaper) }

// mdFleet writes the fleet section: one table row per fleet size, then the
// bounds of each run.
func (r *report) mdFleet(p func(string, ...any)) {
	p("## Fleet: many orchestrator processes on the ring")
	p("")
	p("Each size on its own control plane with 2 webhook processes: that many orchestrator processes (`GOMAXPROCS=1 GOMEMLIMIT=%s`, started %d at a time,", fleetGOMEMLIMIT, fleetBatch)
	p("each batch ready before the next), all on the ring (`--ring-lease-duration=%s`, renewed every %s; `--sweep-interval=%s`, the defaults", fleetRingDuration, fleetRingDuration/3, fleetSweep)
	p("the projection above prices; target Lease %s as in section 5), and the simulated executor (%s per phase, every tenth workflow fails).", faultLeaseDuration, fleetExecDelay)
	p("First the idle fleet is measured; then a storm: one request per target, spread over the window, and on every %dth target a second with", fleetDupEvery)
	p("the same signal sent at once (a duplicate of an active request, as an alert firing again); in its middle third some replicas are SIGKILLed one after another (each scraped just")
	p("before) and as many new ones (new identities) are added halfway. A watch on every WFE records the most ever active on one target.")
	p("The orchestrators and the harness all run as the admin user (`system:masters`), which API Priority and Fairness exempts: no queueing by APF, no inflight limit raised.")
	p("")
	p("| replicas | targets | RRs | WFEs | duplicates | start-up s | storm s | fleet reconciles/RR | API requests/RR | API server requests/s (storm) | idle: replicas' requests/s | idle: paper figure | idle: member Lease writes/s | API server requests/s (idle) | SIGKILLs | rebalance P50 / P95 s | added | added: member Lease P95 s | added: ready P95 s | peak RSS MiB median / max |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
	for _, f := range r.fleet {
		if f.failed != "" {
			p("| %d | %d | %d | did not finish: %s |", f.replicas, f.targets, f.rrs, f.failed)
			continue
		}
		reb := percentiles(f.rebalance)
		p("| %d | %d | %d | %d | **%d** | %.0f | %.0f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %.1f / %.1f | %d | %.1f | %.1f | %.0f / %.0f |",
			f.replicas, f.targets, f.rrs, f.wfes, f.duplicates, f.startup.Seconds(), f.storm.Seconds(), f.reconcilesPerRR(), f.requestsPerRR(),
			f.apiserverPerSecond(), f.fixedMeasure, f.fixedPaper, f.memberWritesPerSecond(), safeDiv(f.apiserverIdle, f.idle.Seconds()),
			f.killed, reb.p50/1000, reb.p95/1000, f.added, percentiles(f.joinLease).p95/1000, percentiles(f.joinReady).p95/1000,
			median(f.peakRSS), maxOf(f.peakRSS))
	}
	p("")
	for _, f := range r.fleet {
		if f.failed == "" {
			r.fleetBounds(p, f)
		}
	}
	r.fleetLargest(p)
	r.fleetHundred(p)
	p("API requests/RR: the replicas' own `rest_client_requests_total` over the storm (from the first request sent until all ended; a killed replica")
	p("counted until just before its kill, an added one from its start), less the costs per replica, reported apart: the idle fleet's rate times")
	p("the storm's length, the added replicas' start-up (the median of the first replicas' requests when ready) and discovery")
	p("(`targetlock_orchestrator_discovery_requests_total`); per RR. API server requests/s: its own `apiserver_request_total` over the storm,")
	p("the harness's requests (creates, a LIST a second until all ended, two watches for the rebalance) included. Member Lease writes: ADDED")
	p("and MODIFIED events on a watch of the Leases with the ring's label, over the idle window. Rebalance: per object the killed replica")
	p("owned with a request pending (the ring as the member Leases stood at the kill), from the SIGKILL until one of its requests changes")
	p("phase, on a watch of the requests; an executing request has nothing to decide until its WFE ends, so if that came after the kill")
	p("(on a watch of the WFEs) it is timed from then. An added replica is timed from its process start until its member Lease exists")
	p("(it is on everyone's ring from its first write) and until it is ready.")
	p("")
	p("Why the fixed cost differs from the paper figure: renewals are exact (one PUT per replica per third of the ring duration); a sweep is")
	p("one LIST per replica per period, but a window of a few periods holds one more or one less per replica depending on when each")
	p("started (all within seconds of each other), so the GETs are what moves; more than the paper means other periodic requests (a")
	p("watch's re-list, a renewal after a conflict). Watches are not in the paper figure and hardly in the count: a watch is one request")
	p("when it opens, and it stays open for minutes; what it costs is the API server's fan-out: every write of a request, a WFE or a Lease")
	p("(a member renewal included) goes to each replica's watch, and each replica's informer decodes it before the ring drops it.")
	p("")
	if slices.ContainsFunc(r.fleet, func(f fleetResult) bool { return f.duplicates > 0 }) {
		p("**INVARIANT BROKEN**")
		p("")
	}
}

// fleetBounds writes one run's bounds and the fixed cost against the paper.
func (r *report) fleetBounds(p func(string, ...any), f fleetResult) {
	reb := percentiles(f.rebalance).p95 / 1000
	p("%d replicas: duplicates %d (bound 0: %s); fleet reconciles/RR %.2f (<= %.1f: %s); API requests/RR %.1f (<= %.0f: %s);",
		f.replicas, f.duplicates, met(f.duplicates == 0), f.reconcilesPerRR(), fleetReconcilesBound, met(f.reconcilesPerRR() <= fleetReconcilesBound),
		f.requestsPerRR(), fleetRequestsBound, met(f.requestsPerRR() <= fleetRequestsBound))
	p("Reconciles by result: %.0f success, %.0f requeue_after, %.0f requeue, %.0f error.", f.reconcilesBy["success"], f.reconcilesBy["requeue_after"],
		f.reconcilesBy["requeue"], f.reconcilesBy["error"])
	if len(f.rebalance) == 0 {
		p("(no object the killed replicas owned was moved by the ring alone: no rebalance to time, and the bound below is not shown met)")
	}
	life := percentiles(f.wfeLife)
	p("The simulated engine took %.1f s at P50, %.1f s at P95, from a WFE's first sight to its end on a watch (it ends each at once).", life.p50/1000, life.p95/1000)
	if n := len(f.rebalanceHeld); n > 0 {
		p("%d object(s) waited on the killed replica's target Lease instead: at most %.1f s (its lock lapses after the target Lease's %s; a claim for a",
			n, percentiles(f.rebalanceHeld).max/1000, faultLeaseDuration)
		p("CREATE its death cut off, never stored, stands for the claim's grace, %s, from when each replica saw it); the ring cannot hand those over.", lease.DefaultClaimGrace)
	}
	p("rebalance P95 %.1f s (<= ring lease duration + 2 s = %s: %s). Fixed cost of the idle fleet: %.1f requests/s measured against %.1f on paper",
		reb, fleetRebalanceBound, met(reb <= fleetRebalanceBound.Seconds()), f.fixedMeasure, f.fixedPaper)
	dir := "above"
	if f.fixedRatio() < 1 {
		dir = "below"
	}
	p("(%d renewals every %s + %d sweeps every %s): %.0f%% %s it (within %.0f%%: %s); member Lease writes %.1f/s against %.1f on paper.",
		f.replicas, fleetRingDuration/3, f.replicas, fleetSweep, 100*abs(f.fixedRatio()-1), dir, 100*fleetFixedTolerance,
		met(abs(f.fixedRatio()-1) <= fleetFixedTolerance), f.memberWritesPerSecond(), float64(f.replicas)/(fleetRingDuration/3).Seconds())
	idle := f.idle.Seconds()
	p("The idle replicas' requests/s by method: PUT %.2f (renewals), GET %.2f (the sweeps' LISTs, and any re-list or re-watch), POST %.2f, PATCH %.2f, DELETE %.2f.",
		safeDiv(f.idleByMethod["PUT"], idle), safeDiv(f.idleByMethod["GET"], idle), safeDiv(f.idleByMethod["POST"], idle),
		safeDiv(f.idleByMethod["PATCH"], idle), safeDiv(f.idleByMethod["DELETE"], idle))
	p("Over the storm, per RR, the requests by method of the replicas alive at its start and end (the killed left out, the added from their start): PUT %.2f, GET %.2f, POST %.2f, PATCH %.2f, DELETE %.2f.",
		safeDiv(f.stormByMethod["PUT"], float64(f.rrs)), safeDiv(f.stormByMethod["GET"], float64(f.rrs)), safeDiv(f.stormByMethod["POST"], float64(f.rrs)),
		safeDiv(f.stormByMethod["PATCH"], float64(f.rrs)), safeDiv(f.stormByMethod["DELETE"], float64(f.rrs)))
	p("Per replica, apart from the per-RR figure: start-up %.0f requests (median; lists, watches, its ring Lease; discovery apart), taken off for the %d added;",
		median(f.startupRequests), f.added)
	p("discovery %.0f requests over the storm (%.2f per replica a minute: the target resolver's refresh, at most every %s while resolving, and the added replicas' start-up check).",
		f.stormDiscovery, safeDiv(f.stormDiscovery, float64(f.replicas+f.added)*f.storm.Minutes()), target.MaxAge)
	p("The idle fleet used %.2f CPU cores (the replicas' user + system time over the window), %.1f ms a second per replica.",
		safeDiv(f.idleCPU, idle), 1000*safeDiv(f.idleCPU, idle*float64(f.replicas)))
	p("")
}

func abs(x float64) float64 { return max(x, -x) }

// fleetHundred says why the full run stops at 50 replicas: what a run of
// 100 alone on this machine showed (reproduce with `make bench
// BENCH_ARGS="--only fleet --fleet-replicas=100"`).
func (r *report) fleetHundred(p func(string, ...any)) {
	if slices.ContainsFunc(r.fleet, func(f fleetResult) bool { return f.replicas >= 100 }) {
		return
	}
	p("100 replicas do not fit this 2-core machine. A run of 100 alone (2026-12-06, before each replica swept only its own objects' Leases at once, `make bench BENCH_ARGS=\"--only fleet --fleet-replicas=100\"`,")
	p("its storm then 2,000 requests, every target with a duplicate): all 100 processes were ready 15 s after the first started; the idle fleet sent")
	p("23.5 requests/s (paper 23.3) with 20.1 member Lease writes/s, at about 65-75 MiB resident each (3.6 GiB in all): memory and start-up are")
	p("not the limit. The storm saturated both cores (load average 70-95): every write of a request, a WFE or a Lease is decoded by each of the")
	p("100 replicas' informers, so the API server's answers slowed past the ring renewal's deadline (a third of the ring lease, 5 s); members")
	p("dropped out and rejoined (about 1,450 ring membership changes logged by each replica in the 17 minutes of the run), each change re-enqueuing the objects")
	p("that moved, and 8 minutes after the last request was sent 1,465 of the 2,000 had not been decided. The limit is CPU in the watch fan-out")
	p("(replicas x writes) and, once renewals miss their deadline, the ring's churn.")
	p("")
}

// withinBounds reports whether a run met every bound of the section; a
// run without a move by the ring has not shown the rebalance bound.
func (f fleetResult) withinBounds() bool {
	return f.failed == "" && f.duplicates == 0 && f.reconcilesPerRR() <= fleetReconcilesBound && f.requestsPerRR() <= fleetRequestsBound &&
		len(f.rebalance) > 0 && percentiles(f.rebalance).p95/1000 <= fleetRebalanceBound.Seconds() && abs(f.fixedRatio()-1) <= fleetFixedTolerance
}

// fleetLargest names the largest fleet of this run within every bound.
func (r *report) fleetLargest(p func(string, ...any)) {
	largest := 0
	for _, f := range r.fleet {
		if f.withinBounds() {
			largest = max(largest, f.replicas)
		}
	}
	if largest == 0 {
		p("No fleet of this run met every bound.")
	} else {
		p("The largest fleet of this run within every bound: **%d replicas**.", largest)
	}
	p("")
}

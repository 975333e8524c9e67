package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

type throughputResult struct {
	replicas, targets int
	rrs               int // requests sent, spread evenly over the targets
	elapsed           time.Duration
	requests          float64 // by the orchestrators, from their client-go counters
	reconciles        float64 // of requests, summed over the orchestrators
	peakRSS           []float64
	webhookRSS        []float64
}

func (r throughputResult) rrsPerSecond() float64 { return float64(r.rrs) / r.elapsed.Seconds() }

func (r throughputResult) requestsPerRR() float64 { return r.requests / float64(r.rrs) }

func (r throughputResult) line() string {
	return fmt.Sprintf("bench throughput replicas=%d targets=%d rrs_per_s=%.1f api_requests_per_rr=%.1f peak_rss_mb=%.0f fleet_reconciles_per_rr=%.2f",
		r.replicas, r.targets, r.rrsPerSecond(), r.requestsPerRR(), maxOf(r.peakRSS), r.reconcilesPerRR())
}

// memoryLine reports the memory run: many requests per target, all sent at once.
func (r throughputResult) memoryLine() string {
	return fmt.Sprintf("bench memory replicas=%d rrs=%d targets=%d seconds=%.0f peak_rss_mb=%.0f webhook_peak_rss_mb=%.0f",
		r.replicas, r.rrs, r.targets, r.elapsed.Seconds(), maxOf(r.peakRSS), maxOf(r.webhookRSS))
}

// reconcilesPerRR is the fleet's reconciles of requests per request: 1 is
// one reconcile by one replica; replicas that each reconcile every request
// multiply it.
func (r throughputResult) reconcilesPerRR() float64 { return r.reconciles / float64(r.rrs) }

// benchThroughput runs n orchestrator processes over perTarget requests on
// each of `targets` targets, all sent at once, in namespace ns, with the
// simulated executor finishing each WFE at once, and times from the first
// CREATE until every request is terminal.
// API requests are the orchestrators' own count (client-go's
// rest_client_requests_total, counted per request by the client); peak RSS
// is each process's VmHWM. Reconciles are controller-runtime's
// controller_runtime_reconcile_total of the remediationrequest controller.
func benchThroughput(ctx context.Context, c *cluster.Cluster, bin, ns string, n, targets, perTarget int) (throughputResult, error) {
	env := c.Env
	res := throughputResult{replicas: n, targets: targets, rrs: targets * perTarget}
	progress("%s: %d orchestrator processes, %d requests on %d targets", ns, n, res.rrs, targets)
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return res, err
	}
	stopExec, err := startExecutor(ctx, env, 0, ns)
	if err != nil {
		return res, err
	}
	defer stopExec()
	procs, err := startOrchestrators(ctx, c, bin, ns, n)
	defer func() {
		for _, p := range procs {
			_ = p.Stop()
		}
	}()
	if err != nil {
		return res, err
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}

	start := time.Now()
	createThroughputRRs(ctx, api, ns, res.rrs, targets)
	err = waitTerminal(ctx, api, ns, res.rrs)
	res.elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("requests not terminal: %w", err)
	}
	for _, p := range procs {
		families, err := cluster.Scrape(ctx, p.metrics)
		if err != nil {
			return res, err
		}
		res.requests += cluster.Sum(families, "rest_client_requests_total", nil)
		res.reconciles += cluster.Sum(families, "controller_runtime_reconcile_total", map[string]string{"controller": "remediationrequest"})
		res.peakRSS = append(res.peakRSS, peakRSS(p.Pid()))
	}
	for _, w := range c.Webhooks {
		res.webhookRSS = append(res.webhookRSS, peakRSS(w.Pid()))
	}
	return res, nil
}

// startOrchestrators starts n orchestrator processes and waits until each
// is ready; it returns those it started, to be stopped, error or not.
func startOrchestrators(ctx context.Context, c *cluster.Cluster, bin, ns string, n int) ([]*proc, error) {
	var procs []*proc
	for i := range n {
		p, err := startOrchestrator(c, bin, fmt.Sprintf("%s-%d", ns, i))
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.ready(ctx, 60*time.Second); err != nil {
			return procs, err
		}
	}
	return procs, nil
}

// createThroughputRRs creates rrs requests in ns on targets Deployments,
// from 16 clients at once.
func createThroughputRRs(ctx context.Context, api client.Client, ns string, rrs, targets int) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > rrs {
					return
				}
				// Each request its own signal: the same one would be a duplicate.
				rr := wrappers.MakeRR(ns, fmt.Sprintf("rr-%05d", i)).Target("Deployment", ns, fmt.Sprintf("app-%04d", (i-1)%targets)).
					Fingerprint(fmt.Sprintf("sig-%d", (i-1)/targets)).Obj()
				if err := api.Create(ctx, rr); err != nil {
					progress("creating %s: %v", rr.Name, err)
				}
			}
		})
	}
	wg.Wait()
}

// waitTerminal waits up to 10 minutes for the rrs requests in ns to be
// terminal.
func waitTerminal(ctx context.Context, api client.Client, ns string, rrs int) error {
	return waitFor(ctx, 10*time.Minute, func() bool {
		list := &v1alpha1.RemediationRequestList{}
		if err := api.List(ctx, list, client.InNamespace(ns)); err != nil {
			return false
		}
		done := 0
		for _, rr := range list.Items {
			if rr.Status.Phase.Terminal() {
				done++
			}
		}
		return done == rrs
	})
}

// proc is an orchestrator process with its own metrics and probe ports.
type proc struct {
	*cluster.Process
	metrics, healthz string
}

// startOrchestrator starts an orchestrator process with processArgs and
// extra flags.
func startOrchestrator(c *cluster.Cluster, bin, identity string, extra ...string) (*proc, error) {
	p, err := newOrchestrator(c, bin, identity, extra...)
	if err != nil {
		return nil, err
	}
	return p, p.Start()
}

// newOrchestrator is startOrchestrator's process, not started yet.
func newOrchestrator(c *cluster.Cluster, bin, identity string, extra ...string) (*proc, error) {
	mp, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	hp, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig=" + c.Kubeconfig, "--lease-namespace=" + cluster.LeaseNamespace, "--identity=" + identity,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mp), "--metrics-insecure", // scraped by the bench, on loopback
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", hp)}, append(extra, processArgs...)...)
	p := &proc{
		Process: cluster.NewProcess(identity, filepath.Join(bin, "orchestrator"), c.Dir, args...),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mp),
		healthz: fmt.Sprintf("http://127.0.0.1:%d/readyz", hp),
	}
	return p, nil
}

func (p *proc) ready(ctx context.Context, timeout time.Duration) error {
	probe := &http.Client{Timeout: 2 * time.Second} // a check that hangs is tried again
	return waitFor(ctx, timeout, func() bool {
		resp, err := probe.Get(p.healthz)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// peakRSS is a process's VmHWM in MiB, or 0 if it cannot be read.
func peakRSS(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

package main

import (
	"bufio"
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
	"github.com/targetlock/targetlock/internal/cluster"
)

type throughputResult struct {
	replicas, targets int
	elapsed           time.Duration
	requests          float64 // by the orchestrators, from their client-go counters
	reconciles        float64 // of requests, summed over the orchestrators
	peakRSS           []float64
	webhookRSS        []float64
}

func (r throughputResult) rrsPerSecond() float64 { return float64(r.targets) / r.elapsed.Seconds() }

func (r throughputResult) line() string {
	return fmt.Sprintf("bench throughput replicas=%d targets=%d rrs_per_s=%.1f api_requests_per_rr=%.1f peak_rss_mb=%.0f fleet_reconciles_per_rr=%.2f",
		r.replicas, r.targets, r.rrsPerSecond(), r.requests/float64(r.targets), maxOf(r.peakRSS), r.reconcilesPerRR())
}

// reconcilesPerRR is the fleet's reconciles of requests per request: 1 is
// one reconcile by one replica; replicas that each reconcile every request
// multiply it.
func (r throughputResult) reconcilesPerRR() float64 { return r.reconciles / float64(r.targets) }

// benchThroughput runs n orchestrator processes over one request per target
// on `targets` targets, with the simulated executor finishing each WFE at
// once, and times from the first CREATE until every request is terminal.
// API requests are the orchestrators' own count (client-go's
// rest_client_requests_total, counted per request by the client); peak RSS
// is each process's VmHWM. Reconciles are controller-runtime's
// controller_runtime_reconcile_total of the remediationrequest controller.
func benchThroughput(ctx context.Context, c *cluster.Cluster, bin string, n, targets int) (throughputResult, error) {
	ns := fmt.Sprintf("throughput-%d", n)
	env := c.Env
	res := throughputResult{replicas: n, targets: targets}
	progress("throughput: %d orchestrator processes, %d targets", n, targets)
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return res, err
	}
	stopExec, err := startExecutor(ctx, env, 0, ns)
	if err != nil {
		return res, err
	}
	defer stopExec()
	var procs []*proc
	defer func() {
		for _, p := range procs {
			_ = p.Stop()
		}
	}()
	for i := range n {
		p, err := startOrchestrator(c, bin, fmt.Sprintf("throughput-%d-%d", n, i))
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.ready(ctx, 60*time.Second); err != nil {
			return res, err
		}
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}

	start := time.Now()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(targets) {
					return
				}
				rr := newRR(ns, fmt.Sprintf("rr-%04d", i), fmt.Sprintf("app-%04d", i), "sig", "restart")
				if err := api.Create(ctx, rr); err != nil {
					progress("creating %s: %v", rr.Name, err)
				}
			}
		})
	}
	wg.Wait()
	err = waitFor(ctx, 10*time.Minute, func() bool {
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
		return done == targets
	})
	res.elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("requests not terminal: %w", err)
	}
	for _, p := range procs {
		reqs, err := p.sum(ctx, "rest_client_requests_total{")
		if err != nil {
			return res, err
		}
		res.requests += reqs
		recs, err := p.sum(ctx, `controller_runtime_reconcile_total{controller="remediationrequest",`)
		if err != nil {
			return res, err
		}
		res.reconciles += recs
		res.peakRSS = append(res.peakRSS, peakRSS(p.Pid()))
	}
	for _, w := range c.Webhooks {
		res.webhookRSS = append(res.webhookRSS, peakRSS(w.Pid()))
	}
	return res, nil
}

// proc is an orchestrator process with its own metrics and probe ports.
type proc struct {
	*cluster.Process
	metrics, healthz string
}

// startOrchestrator starts an orchestrator process with processArgs and
// extra flags.
func startOrchestrator(c *cluster.Cluster, bin, identity string, extra ...string) (*proc, error) {
	mp, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	hp, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig=" + c.Kubeconfig, "--lease-namespace=" + cluster.LeaseNamespace, "--identity=" + identity,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mp), fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", hp)}, append(extra, processArgs...)...)
	p := &proc{
		Process: cluster.NewProcess(identity, filepath.Join(bin, "orchestrator"), c.Dir, args...),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mp),
		healthz: fmt.Sprintf("http://127.0.0.1:%d/readyz", hp),
	}
	return p, p.Start()
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

// sum adds up the samples of the process's metrics whose line starts with
// prefix (a name and the start of its labels).
func (p *proc) sum(ctx context.Context, prefix string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
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

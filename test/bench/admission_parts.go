package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/targetlock/targetlock/test/framework/cluster"
)

var (
	admissionProfile = flag.String("admission-profile", "", "directory to write CPU profiles into (webhook-N.pprof, kube-apiserver.pprof), "+
		"taken over labelled one-at-a-time CREATEs after the admission section's measured ones; empty: none")
	webhookDirect = flag.Bool("webhook-direct", false, "sections 1-3: the API server calls the first webhook process directly, "+
		"not through the proxy that spreads calls over both (to measure the proxy)")
)

// The validating webhook's name in config/webhook, as the API server's
// metrics label it.
const claimWebhook = "workflowexecutions.targetlock.io"

// admissionTimes are cumulative sums and counts, read before and after the
// one-at-a-time CREATEs: the API server's calls of the validating webhook,
// the validating handler's time, the webhooks' own POSTs (their Lease
// CREATEs: every claim here is of a free target).
type admissionTimes struct {
	call, handler, write, served              float64
	calls, handlings, writeCount, servedCount uint64
	// bareCall: the API server's calls of the writing bare webhook.
	bareCall  float64
	bareCalls uint64
}

// readAdmissionTimes scrapes the API server and both webhooks.
func readAdmissionTimes(ctx context.Context, c *cluster.Cluster) (admissionTimes, error) {
	var t admissionTimes
	api, err := c.APIServerMetrics(ctx)
	if err != nil {
		return t, err
	}
	t.call, t.calls = cluster.Histogram(api, "apiserver_admission_webhook_admission_duration_seconds",
		map[string]string{"name": claimWebhook, "type": "validating", "operation": "CREATE"})
	t.bareCall, t.bareCalls = cluster.Histogram(api, "apiserver_admission_webhook_admission_duration_seconds",
		map[string]string{"name": "write." + bareGroup, "type": "validating", "operation": "CREATE"})
	webhooks := c.WebhookMetrics(ctx)
	if len(webhooks) != len(c.Webhooks) {
		return t, fmt.Errorf("%d of %d webhooks answered on /metrics", len(webhooks), len(c.Webhooks))
	}
	for _, families := range webhooks {
		add(&t.handler, &t.handlings, families, "targetlock_webhook_admission_duration_seconds", nil)
		add(&t.write, &t.writeCount, families, "rest_client_request_duration_seconds", map[string]string{"verb": "POST"})
		add(&t.served, &t.servedCount, families, "controller_runtime_webhook_latency_seconds", map[string]string{"webhook": "/validate-workflowexecution"})
	}
	return t, nil
}

func add(sum *float64, count *uint64, families map[string]*dto.MetricFamily, name string, match map[string]string) {
	s, n := cluster.Histogram(families, name, match)
	*sum += s
	*count += n
}

// since is the mean of each part between before and t.
func (t admissionTimes) since(before admissionTimes) (call, handler, write, served time.Duration) {
	mean := func(sum, was float64, n, wasN uint64) time.Duration {
		if n <= wasN {
			return 0
		}
		return time.Duration((sum - was) / float64(n-wasN) * float64(time.Second))
	}
	return mean(t.call, before.call, t.calls, before.calls), mean(t.handler, before.handler, t.handlings, before.handlings),
		mean(t.write, before.write, t.writeCount, before.writeCount), mean(t.served, before.served, t.servedCount, before.servedCount)
}

// profile takes CPU profiles of every webhook process and the API server
// over d while labelled CREATEs go one at a time, into dir.
func (ar *admissionRun) profile(c *cluster.Cluster, dir string, d time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	take := func(name string, get func() ([]byte, error)) {
		data, err := get()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), data, 0o644)
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for i := range c.Webhooks {
		wg.Go(func() {
			take(fmt.Sprintf("webhook-%d", i), func() ([]byte, error) { return c.WebhookCPUProfile(ar.ctx, i, d) })
		})
	}
	wg.Go(func() { take("kube-apiserver", func() ([]byte, error) { return c.APIServerCPUProfile(ar.ctx, d) }) })
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		name := fmt.Sprintf("profile-%05d", n)
		if _, err := ar.create(name, name, true); err != nil {
			return fmt.Errorf("CREATE %s: %w", name, err)
		}
	}
	wg.Wait()
	progress("admission: %d CREATEs profiled over %s into %s", n, d, dir)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// admissionBreakdown writes where the time of a labelled CREATE through the
// webhook goes, part by part, and the floor a claim sets.
func (r *report) admissionBreakdown(p func(string, ...any)) {
	a := r.admission
	with, without := mean(a.with), mean(a.without)
	p("Where the added time goes: means over the one-at-a-time CREATEs, from the API server's `apiserver_admission_webhook_admission_duration_seconds`")
	p("of the claim's webhook, the webhook's own `targetlock_webhook_admission_duration_seconds` and client-go's `rest_client_request_duration_seconds`")
	p("of the webhook's POSTs (its Lease CREATEs: every target here is free), all read before and after:")
	p("")
	p("| | mean ms |")
	p("|---|---:|")
	p("| the twin's CREATE, no webhook (baseline) | %.2f |", ms(without))
	p("| the API server's admission work besides the call | %.2f |", ms(with-without-a.call))
	p("| the call outside the webhook's HTTP handler (the API server's JSON, TLS, HTTP/1.1, the harness's proxy if on the path) | %.2f |", ms(a.call-a.served))
	p("| controller-runtime's handling of the request (decoding the review, encoding the answer: `controller_runtime_webhook_latency_seconds` less the handler) | %.2f |", ms(a.served-a.handler))
	p("| the handler besides its Lease write | %.2f |", ms(a.handler-a.write))
	p("| the Lease write (the webhook's client, request to response) | %.2f |", ms(a.write))
	p("| total: with the webhook, labelled | %.2f |", ms(with))
	p("")
	if a.proxy != 0 {
		p("The harness's userspace proxy, which spreads the API server's connections over the webhook processes as a Service would, adds")
		p("%.2f ms at P50 to a call (200 small POSTs to the webhook through it and 200 straight to a process, in turn, each side on one kept-alive", ms(a.proxy))
		verdict := "next to nothing: a kernel's Service proxy would save little"
		if ms(a.proxy) >= 0.1 {
			verdict = "that much of the call is the harness's, not the webhook's"
		}
		p("connection as the API server's): %s.", verdict)
		p("")
	}
	p("A claim is one write the CREATE cannot do without, so the floor for the P50 ratio here is (without + one Lease write) / without = **%.2f**.", a.floor())
	p("")
	bw, bn, wo := percentiles(a.bareWrite), percentiles(a.bareNone), percentiles(a.without)
	p("The least any webhook costs here, measured: the same CREATE of a third copy of the WFE resource (group `%s`), in turn with the", bareGroup)
	p("others, through a bare webhook (Go's HTTP server, TLS, the review's JSON both ways, nothing of targetlock) that allows after one")
	p("Lease CREATE, and through one that allows without writing:")
	p("")
	p("| | samples | P50 ms | P99 ms | P50 ratio to the twin |")
	p("|---|---:|---:|---:|---:|")
	p("| bare webhook, one Lease write | %d | %.1f | %.1f | **%.2f** |", len(a.bareWrite), bw.p50, bw.p99, ratio(bw.p50, wo.p50))
	p("| bare webhook, no write | %d | %.1f | %.1f | %.2f |", len(a.bareNone), bn.p50, bn.p99, ratio(bn.p50, wo.p50))
	p("| targetlock's webhook, labelled | %d | %.1f | %.1f | %.2f |", len(a.with), percentiles(a.with).p50, percentiles(a.with).p99, ratio(percentiles(a.with).p50, wo.p50))
	p("")
	p("The bare webhooks run in a process of their own, as targetlock's do (the bench binary, re-run). A webhook that must record its claim")
	p("before it allows (the guarantee: two CREATEs on one target never both admitted) cannot go below the first row on this machine;")
	p("targetlock's webhook is %.2f ms above it at P50.", percentiles(a.with).p50-bw.p50)
	if a.bareCall > 0 {
		p("The API server's calls of the writing bare webhook took %.2f ms (mean), %.2f ms of them in its HTTP handler, its Lease CREATE", ms(a.bareCall), ms(a.bareServed))
		p("included: %.2f ms outside it, against %.2f ms for targetlock's. The transport costs both alike; what targetlock adds is in its process.", ms(a.bareCall-a.bareServed), ms(a.call-a.served))
	}
	p("")
}

// mean is the mean of ds, 0 if none.
func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// warmUp sends the first CREATE through the webhooks, again until they
// answer: they may still be starting.
func (ar *admissionRun) warmUp() error {
	var err error
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err = ar.create("warm-up", "warm-up", false); err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
	}
	return fmt.Errorf("warm-up CREATE: %w", err)
}

// measure times n CREATEs of each kind one at a time (oneAtATime) and the
// means of their parts (admissionTimes), after what the harness's proxy
// adds to a webhook call; then, if asked, profiles more of them.
func (ar *admissionRun) measure(c *cluster.Cluster, n int) error {
	res := ar.res
	if !*webhookDirect {
		via, direct, err := c.ProxyCost(ar.ctx, 200)
		if err != nil {
			return err
		}
		res.proxy = time.Duration((percentiles(via).p50 - percentiles(direct).p50) * float64(time.Millisecond))
	}
	before, err := readAdmissionTimes(ar.ctx, c)
	if err != nil {
		return err
	}
	conns := c.ProxyConnections()
	bn0, bd0, err := ar.bare.served(ar.ctx)
	if err != nil {
		return err
	}
	if err := ar.oneAtATime(n); err != nil {
		return err
	}
	bn1, bd1, err := ar.bare.served(ar.ctx)
	if err != nil {
		return err
	}
	progress("admission: the API server opened %d connections to the webhooks over %d CREATEs one at a time", c.ProxyConnections()-conns, 2*n)
	after, err := readAdmissionTimes(ar.ctx, c)
	if err != nil {
		return err
	}
	res.call, res.handler, res.write, res.served = after.since(before)
	if bn1 > bn0 && after.bareCalls > before.bareCalls {
		res.bareServed = (bd1 - bd0) / time.Duration(bn1-bn0)
		res.bareCall = time.Duration((after.bareCall - before.bareCall) / float64(after.bareCalls-before.bareCalls) * float64(time.Second))
	}
	if *admissionProfile != "" {
		return ar.profile(c, *admissionProfile, 10*time.Second)
	}
	return nil
}

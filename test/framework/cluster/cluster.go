// Package cluster runs targetlock on one machine for the demo and the
// benchmarks: a real control plane, webhook processes behind the one address
// the API server calls (over TLS, with generated certificates), and
// orchestrator processes, each with its own log.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// LeaseNamespace is where the components keep the target Leases.
const LeaseNamespace = "targetlock-system"

// Options say what to run.
type Options struct {
	Orchestrators int
	// Webhooks is the number of webhook processes; 0 registers no webhook.
	Webhooks int
	// BinDir holds the orchestrator and webhook binaries (make build).
	BinDir string
	// OrchestratorArgs and WebhookArgs are added to every process's flags.
	OrchestratorArgs, WebhookArgs []string
	// OrchestratorEnv is added to the orchestrators' environment.
	OrchestratorEnv []string
	// Direct has the API server call the first webhook process itself, on
	// the registered address, rather than through the proxy that spreads
	// calls over all of them (the others are not called): to measure what
	// the proxy costs.
	Direct bool
	// KeepLogs leaves Dir (the kubeconfig and each process's log) after
	// Stop, to be read afterwards; otherwise Stop removes it.
	KeepLogs bool
}

// Cluster is a running control plane with targetlock's processes.
type Cluster struct {
	Env           *testenv.Env
	Kubeconfig    string
	Dir           string // kubeconfig and logs
	Orchestrators []*Process
	Webhooks      []*Process

	metrics []string // webhook /metrics URLs
	pprof   []string // webhook pprof base URLs, on loopback
	proxy   *proxy
	keep    bool
}

// Start brings everything up. Stop it with Stop.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	for _, bin := range []string{"orchestrator", "webhook"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("%s not built (run `make build`): %w", bin, err)
		}
	}
	dir, err := os.MkdirTemp("", "targetlock-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), keep: o.KeepLogs}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if err := c.startControlPlane(ctx, root, o); err != nil {
		return c, err
	}
	if o.Webhooks > 0 {
		if err := c.startWebhooks(o); err != nil {
			return c, err
		}
	}
	return c, c.startOrchestrators(o)
}

// startControlPlane starts the API server (with the webhook configuration
// if o has webhooks), writes the kubeconfig and creates LeaseNamespace.
func (c *Cluster) startControlPlane(ctx context.Context, root string, o Options) (err error) {
	var hooks envtest.WebhookInstallOptions
	if o.Webhooks > 0 {
		hooks.Paths = []string{filepath.Join(root, "config", "webhook")}
	}
	if c.Env, err = testenv.Start(testenv.Options{Webhooks: hooks}); err != nil {
		return err
	}
	if err := c.Env.Kubeconfig(c.Kubeconfig); err != nil {
		return err
	}
	return c.Env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: LeaseNamespace}})
}

// startWebhooks starts o.Webhooks webhook processes behind a proxy on the
// address the API server calls.
func (c *Cluster) startWebhooks(o Options) (err error) {
	wio := c.Env.Environment.WebhookInstallOptions
	// Every port at once: ports taken one process at a time can repeat,
	// as each is free again until its process binds it.
	all, err := freePorts(3 * o.Webhooks)
	if err != nil {
		return err
	}
	var backends []string
	for i := range o.Webhooks {
		ports := all[3*i:]
		port, metricsPort, pprofPort := ports[0], ports[1], ports[2]
		host := "127.0.0.1"
		if o.Direct && i == 0 {
			host, port = wio.LocalServingHost, wio.LocalServingPort
		}
		backends = append(backends, net.JoinHostPort(host, strconv.Itoa(port)))
		c.metrics = append(c.metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		c.pprof = append(c.pprof, fmt.Sprintf("http://127.0.0.1:%d", pprofPort))
		args := append([]string{
			"--kubeconfig=" + c.Kubeconfig, "--host=" + host, "--port=" + strconv.Itoa(port),
			"--cert-dir=" + wio.LocalServingCertDir, "--lease-namespace=" + LeaseNamespace,
			fmt.Sprintf("--identity=webhook-%d", i), fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
			"--metrics-insecure", // scraped by this process, on loopback
			fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort),
			// Every process here runs as the admin user: it plays the
			// orchestrator's ServiceAccount.
			"--orchestrator-user=" + testenv.AdminUser,
			"--health-probe-bind-address=0",
		}, o.WebhookArgs...)
		p := NewProcess(fmt.Sprintf("webhook-%d", i), filepath.Join(o.BinDir, "webhook"), c.Dir, args...)
		if err := p.Start(); err != nil {
			return err
		}
		c.Webhooks = append(c.Webhooks, p)
	}
	if o.Direct {
		return nil
	}
	addr := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	if c.proxy, err = startProxy(addr, backends); err != nil {
		return fmt.Errorf("listening on the webhook address %s: %w", addr, err)
	}
	return nil
}

// startOrchestrators starts o.Orchestrators orchestrator processes.
func (c *Cluster) startOrchestrators(o Options) error {
	for i := range o.Orchestrators {
		args := append([]string{
			"--kubeconfig=" + c.Kubeconfig, "--lease-namespace=" + LeaseNamespace,
			fmt.Sprintf("--identity=orchestrator-%d", i), "--metrics-bind-address=0", "--health-probe-bind-address=0",
		}, o.OrchestratorArgs...)
		p := NewProcess(fmt.Sprintf("orchestrator-%d", i), filepath.Join(o.BinDir, "orchestrator"), c.Dir, args...)
		p.Env = o.OrchestratorEnv
		if err := p.Start(); err != nil {
			return err
		}
		c.Orchestrators = append(c.Orchestrators, p)
	}
	return nil
}

// Stop ends every process, then the control plane, and removes Dir
// unless Options.KeepLogs.
func (c *Cluster) Stop() error {
	var errs []error
	for _, p := range append(c.Orchestrators, c.Webhooks...) {
		errs = append(errs, p.Stop())
	}
	if c.proxy != nil {
		c.proxy.close()
	}
	if c.Env != nil {
		errs = append(errs, c.Env.Stop())
	}
	if !c.keep {
		errs = append(errs, os.RemoveAll(c.Dir))
	}
	return errors.Join(errs...)
}

// Admissions sums the webhooks' targetlock_webhook_admissions_total by
// "decision/reason". Webhooks that do not answer are skipped.
func (c *Cluster) Admissions(ctx context.Context) map[string]float64 {
	sums := map[string]float64{}
	for _, families := range c.WebhookMetrics(ctx) {
		for _, m := range families["targetlock_webhook_admissions_total"].GetMetric() {
			sums[label(m, "decision")+"/"+label(m, "reason")] += m.GetCounter().GetValue()
		}
	}
	return sums
}

// WebhookHistogram sums the histogram name's sample sum and count over the
// webhooks that answer.
func (c *Cluster) WebhookHistogram(ctx context.Context, name string) (sum float64, count uint64) {
	for _, families := range c.WebhookMetrics(ctx) {
		for _, m := range families[name].GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
			count += m.GetHistogram().GetSampleCount()
		}
	}
	return sum, count
}

// WebhookMetrics reads each webhook's /metrics, three tries each (a busy
// process may miss one); those that never answer are skipped.
func (c *Cluster) WebhookMetrics(ctx context.Context) []map[string]*dto.MetricFamily {
	var out []map[string]*dto.MetricFamily
	for _, url := range c.metrics {
		for try := range 3 {
			if families, err := Scrape(ctx, url); err == nil {
				out = append(out, families)
				break
			} else if try < 2 {
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}
	return out
}

// Scrape reads a Prometheus text endpoint into its metric families.
func Scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	resp, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// get GETs url on loopback; the caller closes the body.
func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// Sum adds up the counter name's series whose labels include every pair
// of match (nil: all series).
func Sum(families map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	var sum float64
	for _, m := range families[name].GetMetric() {
		if labelsMatch(m, match) {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		if label(m, k) != v {
			return false
		}
	}
	return true
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// FreePort is a loopback port free at the time of the call.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freePorts is n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

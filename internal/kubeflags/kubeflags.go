// Package kubeflags holds the flags every targetlock command shares: which
// cluster, how fast to talk to it, and where a manager serves its metrics
// and probes.
package kubeflags

import (
	"flag"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
)

// The defaults of Flags and Endpoints.
const (
	// DefaultQPS and DefaultBurst replace client-go's 5 requests/s, which
	// throttles a replica that makes a few reads and writes per decision;
	// the API server's priority and fairness protects it from a busy client.
	DefaultQPS   = 50
	DefaultBurst = 100
	// DefaultMetricsAddress and DefaultProbeAddress are controller-runtime's
	// customary ports, which the chart's Services and probes name.
	DefaultMetricsAddress = ":8080"
	DefaultProbeAddress   = ":8081"
)

// Flags are the connection settings.
type Flags struct {
	Kubeconfig string
	QPS        float64
	Burst      int
}

// Bind registers --kubeconfig, --kube-api-qps and --kube-api-burst on fs.
// QPS and Burst already set on f are the flags' defaults (else DefaultQPS
// and DefaultBurst).
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: $KUBECONFIG, then the in-cluster config, then ~/.kube/config")
	qps, burst := f.QPS, f.Burst
	if qps <= 0 {
		qps, burst = DefaultQPS, DefaultBurst
	}
	fs.Float64Var(&f.QPS, "kube-api-qps", qps, "requests per second to the API server (client-side limit)")
	fs.IntVar(&f.Burst, "kube-api-burst", burst, "request burst to the API server (client-side limit)")
}

// Config loads the REST config and applies the rate limits, if set.
func (f *Flags) Config() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if f.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.Kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, err
	}
	if f.QPS > 0 {
		cfg.QPS, cfg.Burst = float32(f.QPS), f.Burst
	}
	return cfg, nil
}

// Endpoints are the addresses a controller-runtime manager serves on.
type Endpoints struct {
	Metrics string
	// MetricsInsecure serves /metrics over plain HTTP to anyone, for local
	// use; the zero value serves it securely.
	MetricsInsecure bool
	Probe           string
}

// Bind registers --metrics-bind-address, --metrics-insecure and
// --health-probe-bind-address on fs.
func (e *Endpoints) Bind(fs *flag.FlagSet) {
	fs.StringVar(&e.Metrics, "metrics-bind-address", DefaultMetricsAddress, "address of the Prometheus /metrics endpoint; \"0\" disables it")
	fs.BoolVar(&e.MetricsInsecure, "metrics-insecure", false, "serve /metrics over plain HTTP without authentication, for local use only (default: HTTPS, to callers the API server authenticates and allows get on /metrics)")
	fs.StringVar(&e.Probe, "health-probe-bind-address", DefaultProbeAddress, "address of the /healthz and /readyz endpoints")
}

// StringList registers a comma-separated list flag.
func StringList(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		*p = nil
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
		return nil
	})
}

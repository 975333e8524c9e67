package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
)

// APIServerMetrics reads the API server's own /metrics, as the admin.
func (c *Cluster) APIServerMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(c.Env.Config)
	if err != nil {
		return nil, err
	}
	data, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	return parseMetrics(bytes.NewReader(data))
}

// Histogram sums the sample sum and count of the histogram name's series
// whose labels include every pair of match (nil: all series).
func Histogram(families map[string]*dto.MetricFamily, name string, match map[string]string) (sum float64, count uint64) {
	for _, m := range families[name].GetMetric() {
		if labelsMatch(m, match) {
			sum += m.GetHistogram().GetSampleSum()
			count += m.GetHistogram().GetSampleCount()
		}
	}
	return sum, count
}

// WebhookCPUProfile takes a CPU profile of webhook process i over d from
// its pprof endpoint (the profile's bytes, for go tool pprof).
func (c *Cluster) WebhookCPUProfile(ctx context.Context, i int, d time.Duration) ([]byte, error) {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.pprof[i], int(d.Seconds()))
	resp, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(r)
}

// APIServerCPUProfile takes a CPU profile of the API server over d, as the
// admin (its --profiling is on by default).
func (c *Cluster) APIServerCPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(c.Env.Config)
	if err != nil {
		return nil, err
	}
	return cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(d.Seconds()))).Timeout(d + 30*time.Second).DoRaw(ctx)
}

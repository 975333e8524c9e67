package chart_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

var metricName = regexp.MustCompile(`targetlock_[a-z0-9_]+`)

// exportedMetrics are the metric names the binaries' code registers: every
// "targetlock_..." string literal in non-test Go files, with the series a
// histogram adds.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`"(targetlock_[a-z0-9_]+)"`)
	names := map[string]bool{}
	for _, dir := range []string{"pkg", "internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range literal.FindAllStringSubmatch(string(src), -1) {
				names[m[1]] = true
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					names[m[1]+suffix] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// Every query of the chart's Grafana dashboard names metrics the binaries
// export, and the chart ships the dashboard only when asked.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "targetlock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exported := exportedMetrics(t)
	if !exported["targetlock_webhook_admissions_total"] || !exported["targetlock_locks"] {
		t.Fatalf("the scan of exported metrics found too little: %v", exported)
	}
	queries := checkQueries(t, dash, exported)
	for _, want := range []string{"targetlock_locks", "targetlock_webhook_admissions_total", "targetlock_webhook_admission_duration_seconds_bucket",
		"targetlock_lease_hold_duration_seconds_bucket", "targetlock_orchestrator_blocked_total", "targetlock_orchestrator_sweeps_total"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
	t.Logf("%d panels, %d queries", len(dash.Panels), queries)

	checkDashboardConfigMap(t, raw)
}

// dashboard is what the test reads of the Grafana dashboard's JSON.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// checkQueries checks every panel has queries and every query names only
// exported metrics; it returns the number of queries.
func checkQueries(t *testing.T, dash dashboard, exported map[string]bool) int {
	t.Helper()
	queries := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no targetlock metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: query %q names %s, which no binary exports", p.Title, tg.Expr, n)
				}
			}
		}
	}
	return queries
}

// checkDashboardConfigMap checks the chart ships the dashboard raw in a
// ConfigMap only when asked.
func checkDashboardConfigMap(t *testing.T, raw []byte) {
	t.Helper()
	if find(mustRender(t, nil), "ConfigMap", "tl-targetlock-dashboard") != nil {
		t.Error("the dashboard ConfigMap is rendered by default")
	}
	cm := find(mustRender(t, map[string]any{"metrics": map[string]any{"grafanaDashboard": map[string]any{"enabled": true}}}), "ConfigMap", "tl-targetlock-dashboard")
	if cm == nil {
		t.Fatal("metrics.grafanaDashboard.enabled renders no ConfigMap")
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard", cm.GetLabels())
	}
	data, _ := cm.Object["data"].(map[string]any)
	if got, _ := data["targetlock.json"].(string); strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
		t.Error("the ConfigMap does not carry dashboards/targetlock.json")
	}
}

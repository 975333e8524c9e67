package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// alertRules renders the chart's PrometheusRule with vals merged into
// metrics and returns its alerting rules.
func alertRules(t *testing.T, vals map[string]any) []map[string]any {
	t.Helper()
	m := map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}}
	for k, v := range vals {
		m[k] = v
	}
	objs := mustRender(t, map[string]any{"metrics": m})
	rule := find(objs, "PrometheusRule", "")
	if rule == nil {
		t.Fatal("no PrometheusRule")
	}
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var rules []map[string]any
	for _, g := range groups {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			if r.(map[string]any)["alert"] != nil {
				rules = append(rules, r.(map[string]any))
			}
		}
	}
	return rules
}

// Every alert links its runbook: a section of docs/runbooks.md saying what
// it means, its impact, how to diagnose and fix it; every targetlock
// metric an alert reads is one the binaries export; the webhook-down alert
// watches the job the ServiceMonitor scrapes (the webhook Service's name).
func TestAlertsHaveRunbooks(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t)
	rules := alertRules(t, nil)
	if len(rules) < 7 {
		t.Fatalf("%d alerts", len(rules))
	}
	for _, r := range rules {
		if err := checkAlert(r, string(raw), exported); err != nil {
			t.Error(err)
		}
	}
	for _, r := range alertRules(t, map[string]any{"prometheusRule": map[string]any{"enabled": true, "runbookBaseURL": "https://wiki.example/targetlock/"}}) {
		if url, _, _ := unstructured.NestedString(r, "annotations", "runbook_url"); !strings.HasPrefix(url, "https://wiki.example/targetlock#") {
			t.Errorf("runbookBaseURL not used: %s", url)
		}
	}
}

func checkAlert(r map[string]any, runbooks string, exported map[string]bool) error {
	const base = "https://github.com/targetlock/targetlock/blob/main/docs/runbooks.md"
	name := r["alert"].(string)
	if url, _, _ := unstructured.NestedString(r, "annotations", "runbook_url"); url != base+"#"+strings.ToLower(name) {
		return fmt.Errorf("%s: runbook_url %q", name, url)
	}
	if sev, _, _ := unstructured.NestedString(r, "labels", "severity"); sev != "warning" && sev != "critical" {
		return fmt.Errorf("%s: severity %q", name, sev)
	}
	section := runbookSection(runbooks, name)
	for _, part := range []string{"**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Fix.**"} {
		if !strings.Contains(section, part) {
			return fmt.Errorf("docs/runbooks.md: section %s lacks %s", name, part)
		}
	}
	expr, _ := r["expr"].(string)
	for _, m := range metricName.FindAllString(expr, -1) {
		if !exported[m] {
			return fmt.Errorf("%s reads %s, which no binary exports", name, m)
		}
	}
	if name == "TargetlockWebhookDown" && !strings.Contains(expr, `job="tl-targetlock-webhook",namespace="targetlock-system"`) {
		return fmt.Errorf("TargetlockWebhookDown watches %s; want the webhook Service's job", expr)
	}
	return nil
}

var webhookNameMatcher = regexp.MustCompile(`name=~"([^"]+)"`)

// The API server's metrics name targetlock's WFE webhooks as the chart
// does (validating and labelling), not the RemediationRequest labeller,
// which fails open by design.
func TestAPIServerAlertsNameTheWebhooks(t *testing.T) {
	vwc := find(mustRender(t, nil), "ValidatingWebhookConfiguration", "")
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	hookName := hooks[0].(map[string]any)["name"].(string)
	n := 0
	for _, r := range alertRules(t, nil) {
		expr := r["expr"].(string)
		if !strings.Contains(expr, "apiserver_admission_webhook") {
			continue
		}
		n++
		m := webhookNameMatcher.FindStringSubmatch(expr)
		if m == nil {
			t.Errorf("%s: no webhook name matcher", r["alert"])
			continue
		}
		re := regexp.MustCompile("^(?:" + strings.ReplaceAll(m[1], `\\`, `\`) + ")$")
		if !re.MatchString(hookName) || !re.MatchString("label."+hookName) || re.MatchString("label.remediationrequests.targetlock.io") {
			t.Errorf("%s: matcher %s against %s", r["alert"], m[1], hookName)
		}
	}
	if n != 2 {
		t.Errorf("%d alerts on the API server's webhook metrics; want 2", n)
	}
}

// runbookSection is the text of the "## name" section of doc.
func runbookSection(doc, name string) string {
	_, after, ok := strings.Cut(doc, "\n## "+name+"\n")
	if !ok {
		return ""
	}
	section, _, _ := strings.Cut(after, "\n## ")
	return section
}

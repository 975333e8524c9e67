package chart_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// helm lint without -n lints in namespace default, which the chart refuses
// (its Lease RBAC cannot be narrowed to targetlock's own Leases). Helm's
// lint mode logs a template's fail at INFO and renders on, so the lint
// still checks every template and reports no failure: true of the chart,
// not of an install there, which the same fail stops and whose message
// says to pass -n.
func TestLintWithoutNamespace(t *testing.T) {
	l := lint.AllWithKubeVersion(chartDir(t), nil, "default", kubeVersion)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint -n default: %s", m)
		}
	}
	_, err := renderIn(t, "default", nil)
	if err == nil || !strings.Contains(err.Error(), "helm lint and helm template default to namespace default too: pass them -n") {
		t.Errorf("render in default: %v; want the refusal to say to pass -n", err)
	}
}

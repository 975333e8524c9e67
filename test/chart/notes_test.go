package chart_test

import (
	"strings"
	"testing"
)

// notes renders the chart's NOTES.txt as `helm install` prints it.
func notes(t *testing.T, vals map[string]any) string {
	t.Helper()
	rel, err := dryRun(t, releaseNS, vals)
	if err != nil {
		t.Fatal(err)
	}
	return rel.Info.Notes
}

// After an install the notes say what runs, where the certificate comes
// from, and the commands that check it, per mode and certs mode.
func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vals      map[string]any
		want, not []string
	}{
		{"standalone, cert-manager", nil,
			[]string{"release tl in namespace targetlock-system", "Mode standalone: 3 orchestrator replicas", "cert-manager issues it (Certificate targetlock-system/tl-targetlock-webhook-cert)",
				"kubectl targetlock certs verify --release tl -n targetlock-system --dry-run-create --wait=2m", "helm test tl -n targetlock-system",
				"kubectl targetlock locks -n targetlock-system", "kubectl targetlock denials -A --since 1h",
				"kubectl get remediationrequests,workflowexecutions -A", "docs/runbooks.md", "metrics.prometheusRule.enabled=true)"},
			[]string{"kubernaut.ai", "not for production"}},
		{"standalone, helm", modes["helm"],
			[]string{"certs.mode=helm", "valid 365 days", "not for production"},
			[]string{"cert-manager issues"}},
		{"kubernaut, manual, renamed", map[string]any{"mode": "kubernaut", "fullnameOverride": "guard", "certs": modes["manual"]["certs"],
			"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}},
			[]string{"Mode kubernaut", "kubernaut.ai", "ro-lock Leases of\nkubernaut's RemediationOrchestrator in kubernaut-system", "your Secret targetlock-system/my-tls",
				"kubectl targetlock certs verify --webhook-configuration guard --secret my-tls --certificate guard-webhook-cert -n targetlock-system --dry-run-create --wait=2m"},
			[]string{"orchestrator replicas", "remediationrequests,workflowexecutions", "--release", "metrics.prometheusRule.enabled=true)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := notes(t, tc.vals)
			for _, w := range tc.want {
				if !strings.Contains(n, w) {
					t.Errorf("notes lack %q:\n%s", w, n)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(n, w) {
					t.Errorf("notes contain %q:\n%s", w, n)
				}
			}
		})
	}
}

// The certs verify command the notes print runs (its flags exist) and
// names the release's own objects: run as `webhook certs verify`, its
// alias, against the installed release.
func TestNotesCertsVerifyCommandRuns(t *testing.T) {
	mainInstall(t)
	var args []string
	for line := range strings.SplitSeq(notes(t, nil), "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "kubectl targetlock certs verify "); ok {
			args = strings.Fields(cmd)
		}
	}
	if args == nil {
		t.Fatal("the notes print no certs verify command")
	}
	out, _ := certsVerify(t, args...)
	if !strings.Contains(out, "webhook-configuration") || !strings.Contains(out, "ValidatingWebhookConfiguration tl-targetlock found") {
		t.Errorf("certs verify %v did not find the release's webhook configuration:\n%s", args, out)
	}
}

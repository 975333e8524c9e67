package chart_test

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// renderAsDependency renders a parent chart that depends on targetlock, as
// `helm template` would, with the parent's values.
func renderAsDependency(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	sub, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	parent := &chart.Chart{Metadata: &chart.Metadata{
		APIVersion: chart.APIVersionV2, Name: "platform", Version: "1.0.0",
		Dependencies: []*chart.Dependency{{Name: "targetlock", Version: sub.Metadata.Version}},
	}}
	parent.AddDependency(sub)
	inst := action.NewInstall(&action.Configuration{})
	inst.ClientOnly, inst.DryRun, inst.IncludeCRDs = true, true, true
	inst.ReleaseName, inst.Namespace = "platform", releaseNS
	inst.KubeVersion = kubeVersion
	rel, err := inst.Run(parent, vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// A parent chart's global values reach every subchart: the schema must let
// them through (additionalProperties: false everywhere else).
func TestInstallsAsASubchartWithGlobals(t *testing.T) {
	vals := map[string]any{
		"global":     map[string]any{"imageRegistry": "registry.example", "labels": map[string]any{"team": "sre"}},
		"targetlock": map[string]any{"certs": map[string]any{"mode": "helm"}},
	}
	manifest, err := renderAsDependency(t, vals)
	if err != nil {
		t.Fatalf("the chart as a dependency with global values: %v", err)
	}
	kinds := map[string]int{}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		for _, k := range []string{"kind: Deployment", "kind: ValidatingWebhookConfiguration"} {
			if containsLine(doc, k) {
				kinds[k]++
			}
		}
	}
	if kinds["kind: Deployment"] != 2 || kinds["kind: ValidatingWebhookConfiguration"] != 1 {
		t.Errorf("subchart rendered %v; want 2 Deployments and 1 ValidatingWebhookConfiguration", kinds)
	}
	// The schema still refuses what it does not name, global or not.
	vals["targetlock"] = map[string]any{"webhook": map[string]any{"replica": 2}}
	if _, err := renderAsDependency(t, vals); err == nil {
		t.Error("a misspelt value (webhook.replica) passed the schema")
	}
	// global must be an object.
	if _, err := render(t, map[string]any{"global": "x"}); err == nil {
		t.Error("global: x passed the schema")
	}
}

// containsLine reports whether doc has line as one of its lines.
func containsLine(doc, line string) bool {
	return slices.Contains(strings.Split(doc, "\n"), line)
}

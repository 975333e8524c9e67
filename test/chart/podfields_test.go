package chart_test

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var podFieldValues = map[string]any{
	"podLabels":         map[string]any{"team": "sre", "app.kubernetes.io/component": "evil"},
	"podAnnotations":    map[string]any{"a": "b"},
	"priorityClassName": "system-cluster-critical",
	"topologySpreadConstraints": []any{
		map[string]any{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
		map[string]any{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
			"labelSelector": map[string]any{"matchLabels": map[string]any{"mine": "yes"}}},
	},
	"serviceAccount": map[string]any{"annotations": map[string]any{"iam.example/role": "arn:x"}},
}

// Both Deployments take the usual pod fields; the chart's own labels, the
// Deployment's selector among them, win over podLabels (else the
// Deployment would select no pod of its own); a spread constraint without
// a selector spreads this component's pods.
func TestPodFields(t *testing.T) {
	objs := mustRender(t, map[string]any{"orchestrator": podFieldValues, "webhook": podFieldValues})
	for _, comp := range []string{"orchestrator", "webhook"} {
		name := "tl-targetlock-" + comp
		if err := checkPodFields(find(objs, "Deployment", name), comp); err != nil {
			t.Errorf("%s: %v", comp, err)
		}
		sa := find(objs, "ServiceAccount", name)
		if got := sa.GetAnnotations()["iam.example/role"]; got != "arn:x" {
			t.Errorf("ServiceAccount %s annotations %v", name, sa.GetAnnotations())
		}
	}
	// Unset, none of them appears.
	for _, d := range []*unstructured.Unstructured{find(mustRender(t, nil), "Deployment", "tl-targetlock-webhook")} {
		spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
		for _, f := range []string{"priorityClassName", "topologySpreadConstraints"} {
			if _, ok := spec[f]; ok {
				t.Errorf("%s rendered without being set", f)
			}
		}
	}
	for _, bad := range []map[string]any{
		{"priorityClassName": "Not_A_Name"},
		{"topologySpreadConstraints": []any{map[string]any{"maxSkew": 1}}},
		{"serviceAccount": map[string]any{"name": "x"}},
		{"podLabels": map[string]any{"n": 1}},
	} {
		if _, err := render(t, map[string]any{"webhook": bad}); err == nil {
			t.Errorf("webhook %v passed the schema", bad)
		}
	}
}

func checkPodFields(d *unstructured.Unstructured, comp string) error {
	sel, _, _ := unstructured.NestedStringMap(d.Object, "spec", "selector", "matchLabels")
	labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if labels[k] != v {
			return fmt.Errorf("pod label %s=%q does not match the selector's %q", k, labels[k], v)
		}
	}
	if labels["team"] != "sre" {
		return fmt.Errorf("podLabels missing: %v", labels)
	}
	if a, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "annotations"); a["a"] != "b" {
		return fmt.Errorf("podAnnotations missing: %v", a)
	}
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if spec["priorityClassName"] != "system-cluster-critical" {
		return fmt.Errorf("priorityClassName %v", spec["priorityClassName"])
	}
	tsc, _, _ := unstructured.NestedSlice(spec, "topologySpreadConstraints")
	if len(tsc) != 2 {
		return fmt.Errorf("topologySpreadConstraints %v", tsc)
	}
	first, _, _ := unstructured.NestedStringMap(tsc[0].(map[string]any), "labelSelector", "matchLabels")
	if !reflect.DeepEqual(first, sel) || sel["app.kubernetes.io/component"] != comp {
		return fmt.Errorf("a constraint without a selector got %v; want the selector %v", first, sel)
	}
	second, _, _ := unstructured.NestedStringMap(tsc[1].(map[string]any), "labelSelector", "matchLabels")
	if !reflect.DeepEqual(second, map[string]string{"mine": "yes"}) {
		return fmt.Errorf("a constraint's own selector was replaced: %v", second)
	}
	return nil
}

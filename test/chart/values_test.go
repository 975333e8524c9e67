package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// values.schema.json and values.yaml describe the same values: every value
// has a typed schema entry, and the schema names no value that values.yaml
// lacks. (The chart README is generated from values.yaml by helm-docs and
// checked by `make verify-chart-docs`.)
func TestSchemaTypesEveryValue(t *testing.T) {
	dir := chartDir(t)
	var values map[string]any
	var schema map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(path string, vals, sch map[string]any)
	walk = func(path string, vals, sch map[string]any) {
		props, _ := sch["properties"].(map[string]any)
		if sch["additionalProperties"] != false {
			t.Errorf("%s: schema allows values it does not name (want additionalProperties: false)", or(path, "(root)"))
		}
		for k, v := range vals {
			p := path + k
			node, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("%s is in values.yaml but not in values.schema.json", p)
				continue
			}
			checked++
			if !slices.ContainsFunc([]string{"type", "enum", "const", "oneOf", "anyOf"}, func(kw string) bool { _, ok := node[kw]; return ok }) {
				t.Errorf("%s has no type in values.schema.json", p)
			}
			// Nested values with a schema of their own are checked key by
			// key; a free-form object (resources, affinity) is typed as a whole.
			if sub, ok := v.(map[string]any); ok && node["properties"] != nil {
				walk(p+".", sub, node)
			}
		}
		for k := range props {
			if _, ok := vals[k]; !ok {
				schemaOnly(t, path, k)
			}
		}
	}
	walk("", values, schema)
	if checked < 50 {
		t.Errorf("only %d values checked; the walk is broken", checked)
	}
}

// schemaOnly reports a value the schema names and values.yaml lacks, but
// global: Helm's, which a parent chart sets for its subcharts.
func schemaOnly(t *testing.T, path, k string) {
	t.Helper()
	if path == "" && k == "global" {
		return
	}
	t.Errorf("%s%s is in values.schema.json but not in values.yaml", path, k)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// A stopping webhook pod keeps serving while its endpoint is removed: without
// this the API server's in-flight calls to it fail (seen on a real node).
func TestWebhookDrainsBeforeStopping(t *testing.T) {
	dep := find(mustRender(t, nil), "Deployment", "tl-targetlock-webhook")
	if dep == nil {
		t.Fatal("no webhook Deployment")
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c, _ := containers[0].(map[string]any)
	secs, found := number(c, "lifecycle", "preStop", "sleep", "seconds")
	if !found || secs != 5 {
		t.Errorf("webhook preStop sleep = %v (found %v), want 5", secs, found)
	}
	if grace, found := number(dep.Object, "spec", "template", "spec", "terminationGracePeriodSeconds"); found && grace <= secs {
		t.Errorf("terminationGracePeriodSeconds %v leaves no time after the preStop sleep", grace)
	}
	dep = find(mustRender(t, map[string]any{"webhook": map[string]any{"preStopSleepSeconds": 0}}), "Deployment", "tl-targetlock-webhook")
	containers, _, _ = unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if c, _ := containers[0].(map[string]any); c["lifecycle"] != nil {
		t.Errorf("preStopSleepSeconds=0 still renders a lifecycle: %v", c["lifecycle"])
	}
}

// number reads a rendered number (YAML decodes it as float64).
func number(obj map[string]any, fields ...string) (float64, bool) {
	v, found, _ := unstructured.NestedFieldNoCopy(obj, fields...)
	switch n := v.(type) {
	case float64:
		return n, found
	case int64:
		return float64(n), found
	}
	return 0, false
}

package chart_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The identity label of requests and WFEs is changed by the orchestrator's
// ServiceAccount alone: a ValidatingAdmissionPolicy in standalone mode
// (kubernaut mode runs no orchestrator), the same as config/policy's but
// for the ServiceAccount it names.
func TestTargetHashLabelPolicy(t *testing.T) {
	const name = "tl-targetlock-target-hash-label"
	objs := mustRender(t, nil)
	vap := find(objs, "ValidatingAdmissionPolicy", name)
	binding := find(objs, "ValidatingAdmissionPolicyBinding", name)
	if vap == nil || binding == nil {
		t.Fatal("no label policy and binding")
	}
	rules, _, _ := unstructured.NestedSlice(vap.Object, "spec", "matchConstraints", "resourceRules")
	if len(rules) != 1 {
		t.Fatalf("resourceRules = %v", rules)
	}
	ops, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "operations")
	res, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "resources")
	if !slices.Equal(ops, []string{"UPDATE"}) || !slices.Equal(res, []string{"remediationrequests", "workflowexecutions"}) {
		t.Errorf("policy matches %v %v; want UPDATE of remediationrequests and workflowexecutions", ops, res)
	}
	if got := variable(vap, "orchestrator"); got != "'system:serviceaccount:"+releaseNS+":tl-targetlock-orchestrator'" {
		t.Errorf("the policy trusts %s, not the orchestrator's ServiceAccount", got)
	}
	if name, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); name != vap.GetName() {
		t.Errorf("binding names policy %q", name)
	}
	if actions, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !slices.Equal(actions, []string{"Deny"}) {
		t.Errorf("validationActions = %v, want [Deny]", actions)
	}

	cfg, cfgBinding := configPolicy(t, "targetlock-target-hash-label")
	if got := variable(cfg, "orchestrator"); got != "'system:serviceaccount:targetlock-system:targetlock-orchestrator'" {
		t.Errorf("config/policy trusts %s", got)
	}
	if !reflect.DeepEqual(withoutOrchestrator(vap), withoutOrchestrator(cfg)) ||
		!reflect.DeepEqual(binding.Object["spec"].(map[string]any)["validationActions"], cfgBinding.Object["spec"].(map[string]any)["validationActions"]) {
		t.Errorf("config/policy and the chart's label policy differ:\n%s\n%s", toYAML(t, cfg.Object["spec"]), toYAML(t, vap.Object["spec"]))
	}

	if find(mustRender(t, kubernautMode), "ValidatingAdmissionPolicy", name) != nil {
		t.Error("kubernaut mode renders the label policy for an orchestrator it does not run")
	}
}

// variable is the expression of the policy's variable name.
func variable(vap *unstructured.Unstructured, name string) string {
	vars, _, _ := unstructured.NestedSlice(vap.Object, "spec", "variables")
	for _, v := range vars {
		if m := v.(map[string]any); m["name"] == name {
			return strings.TrimSpace(m["expression"].(string))
		}
	}
	return ""
}

// withoutOrchestrator is the policy's spec without the ServiceAccount it
// trusts, which differs with the release.
func withoutOrchestrator(vap *unstructured.Unstructured) map[string]any {
	spec := unstructured.Unstructured{Object: vap.DeepCopy().Object}
	vars, _, _ := unstructured.NestedSlice(spec.Object, "spec", "variables")
	vars = slices.DeleteFunc(vars, func(v any) bool { return v.(map[string]any)["name"] == "orchestrator" })
	_ = unstructured.SetNestedSlice(spec.Object, vars, "spec", "variables")
	return spec.Object["spec"].(map[string]any)
}

// Retention deletes ended requests only when orchestrator.terminalRequestTTL
// is set, and so may delete them only then: RemediationRequests, nothing
// else, and by the orchestrator's ClusterRole alone.
func TestRetentionMayDeleteOnlyWithTTL(t *testing.T) {
	for ttl, want := range map[string]bool{"": false, "0s": false, "0m0s": false, "1h": true, "0.5s": true} {
		t.Run(ttl, func(t *testing.T) {
			var vals map[string]any
			if ttl != "" {
				vals = map[string]any{"orchestrator": map[string]any{"terminalRequestTTL": ttl}}
			}
			var deleters []string
			for _, o := range mustRender(t, vals) {
				if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
					continue
				}
				for res, verbs := range grants(o) {
					if slices.Contains(verbs, "delete") && !strings.HasPrefix(res, "coordination.k8s.io/") {
						deleters = append(deleters, o.GetKind()+" "+o.GetName()+" "+res)
					}
				}
			}
			var wantDeleters []string
			if want {
				wantDeleters = []string{"ClusterRole tl-targetlock-orchestrator targetlock.io/remediationrequests"}
			}
			if !slices.Equal(deleters, wantDeleters) {
				t.Errorf("terminalRequestTTL %q: delete granted by %v, want %v", ttl, deleters, wantDeleters)
			}
		})
	}
}

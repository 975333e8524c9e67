package chart_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

const kubernautRO = "kubernaut-system/remediationorchestrator-controller"

var kubernautMode = map[string]any{"mode": "kubernaut"}

// webhookArgs are the webhook container's arguments.
func webhookArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	d := find(objs, "Deployment", "tl-targetlock-webhook")
	if d == nil {
		t.Fatal("no webhook Deployment")
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}

// flag is the value of --name in args, and whether it is there at all.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// kubernaut mode renders the guard alone: no CRD (even with crds.install),
// nothing of the orchestrator, no labelling webhook (kubernaut's objects are
// never written), and a validating webhook on kubernaut.ai CREATEs.
func TestKubernautModeRendersOnlyTheGuard(t *testing.T) {
	objs := mustRender(t, map[string]any{"mode": "kubernaut", "crds": map[string]any{"install": true},
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}})
	if n := count(objs, "CustomResourceDefinition"); n != 0 {
		t.Errorf("kubernaut mode with crds.install=true renders %d CRDs", n)
	}
	if m := find(objs, "MutatingWebhookConfiguration", ""); m != nil {
		t.Errorf("kubernaut mode renders a mutating webhook %s", m.GetName())
	}
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/component"] == "orchestrator" || strings.Contains(o.GetName(), "orchestrator") {
			t.Errorf("kubernaut mode renders the orchestrator's %s %s", o.GetKind(), o.GetName())
		}
	}
	if n := count(objs, "Deployment"); n != 1 {
		t.Errorf("Deployments = %d, want the webhook's only", n)
	}
	if s := toYAML(t, find(objs, "ServiceMonitor", "").Object); strings.Contains(s, "orchestrator") {
		t.Errorf("the ServiceMonitor selects the orchestrator:\n%s", s)
	}
	checkKubernautWebhookRule(t, objs)
	for _, o := range objs {
		if s := toYAML(t, o.Object); strings.Contains(s, "- targetlock.io\n") {
			t.Errorf("%s %s names the targetlock.io group:\n%s", o.GetKind(), o.GetName(), s)
		}
	}
	if count(objs, "NetworkPolicy") != 1 || find(objs, "NetworkPolicy", "tl-targetlock-webhook") == nil {
		t.Error("kubernaut mode: want the webhook's NetworkPolicy only")
	}
	if _, err := render(t, map[string]any{"mode": "Kubernaut"}); err == nil {
		t.Error("mode=Kubernaut rendered without an error")
	}
}

// checkKubernautWebhookRule: one validating webhook, on kubernaut.ai
// workflowexecutions.
func checkKubernautWebhookRule(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	vwc := find(objs, "ValidatingWebhookConfiguration", "")
	if vwc == nil {
		t.Fatal("no ValidatingWebhookConfiguration")
	}
	assertWebhook(t, vwc)
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	if len(hooks) != 1 {
		t.Fatalf("validating webhooks = %d, want 1", len(hooks))
	}
	rules, _, _ := unstructured.NestedSlice(hooks[0].(map[string]any), "rules")
	groups, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "apiGroups")
	resources, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "resources")
	if !slices.Equal(groups, []string{"kubernaut.ai"}) || !slices.Equal(resources, []string{"workflowexecutions"}) {
		t.Errorf("webhook rule on %v %v, want kubernaut.ai workflowexecutions", groups, resources)
	}
}

// The webhook's flags in each mode.
func TestModeFlags(t *testing.T) {
	orchUser := "system:serviceaccount:" + releaseNS + ":tl-targetlock-orchestrator"
	for _, tc := range []struct {
		name string
		vals map[string]any
		want map[string]string // flag -> value; "" = absent
	}{
		{"standalone", nil, map[string]string{
			"execution-group": "targetlock.io", "orchestrator-user": orchUser, "trusted-service-accounts": "", "kubernaut-lock-namespace": "", "release-claims": "false"}},
		{"standalone with trusted", map[string]any{"tenancy": map[string]any{"trustedServiceAccounts": []any{"ci/deployer"}}}, map[string]string{
			"execution-group": "targetlock.io", "orchestrator-user": orchUser, "trusted-service-accounts": "ci/deployer", "kubernaut-lock-namespace": ""}},
		{"kubernaut", kubernautMode, map[string]string{
			"execution-group": "kubernaut.ai", "orchestrator-user": "", "trusted-service-accounts": kubernautRO, "kubernaut-lock-namespace": "kubernaut-system", "release-claims": ""}},
		{"kubernaut with trusted", map[string]any{"mode": "kubernaut", "tenancy": map[string]any{"trustedServiceAccounts": []any{"ci/deployer", kubernautRO}}}, map[string]string{
			"execution-group": "kubernaut.ai", "orchestrator-user": "", "trusted-service-accounts": "ci/deployer," + kubernautRO, "kubernaut-lock-namespace": "kubernaut-system"}},
		{"kubernaut elsewhere", map[string]any{"mode": "kubernaut", "kubernaut": map[string]any{"namespace": "kn", "orchestratorServiceAccount": "ro"}}, map[string]string{
			"execution-group": "kubernaut.ai", "orchestrator-user": "", "trusted-service-accounts": "kn/ro", "kubernaut-lock-namespace": "kn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := webhookArgs(t, mustRender(t, tc.vals))
			for name, want := range tc.want {
				got, ok := flag(args, name)
				if want == "" && ok {
					t.Errorf("--%s=%s rendered, want none", name, got)
				}
				if want != "" && got != want {
					t.Errorf("--%s=%q, want %q (args %v)", name, got, want, args)
				}
			}
		})
	}
}

// The webhook reads the guarded group's WFEs, watches CRDs and APIServices
// (discovery), writes the Policy Reports of its refusals, claims and
// releases Leases of its namespace, and in kubernaut mode only reads
// kubernaut's lock Leases.
func TestWebhookRBACPerMode(t *testing.T) {
	for mode, vals := range map[string]map[string]any{"standalone": nil, "kubernaut": kubernautMode} {
		t.Run(mode, func(t *testing.T) {
			objs := mustRender(t, vals)
			group := "targetlock.io"
			if mode == "kubernaut" {
				group = "kubernaut.ai"
			}
			cr := find(objs, "ClusterRole", "tl-targetlock-webhook")
			want := map[string][]string{
				group + "/workflowexecutions":                    {"get", "list", "watch"},
				"events.k8s.io/events":                           {"create", "patch"},
				"apiextensions.k8s.io/customresourcedefinitions": {"list", "watch"},
				"apiregistration.k8s.io/apiservices":             {"list", "watch"},
				"openreports.io/reports":                         {"get", "create", "update"}, // webhook.policyReports
			}
			if got := grants(cr); !reflect.DeepEqual(got, want) {
				t.Errorf("webhook ClusterRole grants %v, want %v", got, want)
			}
			role := find(objs, "Role", "tl-targetlock-webhook")
			if got := grants(role); !reflect.DeepEqual(got, map[string][]string{"coordination.k8s.io/leases": {"get", "list", "watch", "create", "update", "delete"}}) {
				t.Errorf("webhook Role grants %v", got)
			}
			locks := find(objs, "Role", "tl-targetlock-webhook-kubernaut-locks")
			binding := find(objs, "RoleBinding", "tl-targetlock-webhook-kubernaut-locks")
			if mode == "standalone" {
				if locks != nil || binding != nil {
					t.Error("standalone mode grants reads of kubernaut's Leases")
				}
				return
			}
			if locks == nil || binding == nil {
				t.Fatal("kubernaut mode: no Role and RoleBinding for kubernaut's lock Leases")
			}
			if locks.GetNamespace() != "kubernaut-system" || binding.GetNamespace() != "kubernaut-system" {
				t.Errorf("kubernaut lock Role in %s, binding in %s; want kubernaut-system", locks.GetNamespace(), binding.GetNamespace())
			}
			if got := grants(locks); !reflect.DeepEqual(got, map[string][]string{"coordination.k8s.io/leases": {"get", "list", "watch"}}) {
				t.Errorf("kubernaut lock Role grants %v, want leases get/list/watch", got)
			}
			s := toYAML(t, binding.Object)
			for _, w := range []string{"name: tl-targetlock-webhook\n", "namespace: " + releaseNS, "name: tl-targetlock-webhook-kubernaut-locks"} {
				if !strings.Contains(s, w) {
					t.Errorf("kubernaut lock RoleBinding lacks %q:\n%s", w, s)
				}
			}
		})
	}
}

// grants flattens a role's rules into "group/resource" -> verbs.
func grants(role *unstructured.Unstructured) map[string][]string {
	if role == nil {
		return nil
	}
	out := map[string][]string{}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range rules {
		rule := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
		res, _, _ := unstructured.NestedStringSlice(rule, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
		for _, g := range groups {
			for _, r := range res {
				out[g+"/"+r] = append(out[g+"/"+r], verbs...)
			}
		}
	}
	return out
}

// A terminal phase is final on the guarded group's WFEs, in both modes: a
// ValidatingAdmissionPolicy on UPDATE of the object and of its /status.
// config/policy holds the same policy for targetlock.io.
func TestTerminalPolicyInBothModes(t *testing.T) {
	for mode, vals := range map[string]map[string]any{"standalone": nil, "kubernaut": kubernautMode} {
		t.Run(mode, func(t *testing.T) {
			group := "targetlock.io"
			if mode == "kubernaut" {
				group = "kubernaut.ai"
			}
			objs := mustRender(t, vals)
			vap := find(objs, "ValidatingAdmissionPolicy", "tl-targetlock-terminal-is-final")
			binding := find(objs, "ValidatingAdmissionPolicyBinding", "tl-targetlock-terminal-is-final")
			if vap == nil || binding == nil {
				t.Fatal("no ValidatingAdmissionPolicy and binding")
			}
			assertTerminalPolicy(t, vap, binding, group)
			if mode == "standalone" {
				vap2, binding2 := policyFromConfig(t)
				if !reflect.DeepEqual(vap.Object["spec"], vap2.Object["spec"]) {
					t.Errorf("config/policy and the chart's policy differ:\n%s\n%s", toYAML(t, vap2.Object["spec"]), toYAML(t, vap.Object["spec"]))
				}
				if !reflect.DeepEqual(binding.Object["spec"].(map[string]any)["validationActions"], binding2.Object["spec"].(map[string]any)["validationActions"]) {
					t.Error("config/policy and the chart's binding differ")
				}
			}
		})
	}
}

func assertTerminalPolicy(t *testing.T, vap, binding *unstructured.Unstructured, group string) {
	t.Helper()
	if vap.GetAPIVersion() != "admissionregistration.k8s.io/v1" || binding.GetAPIVersion() != "admissionregistration.k8s.io/v1" {
		t.Errorf("policy API versions %s, %s", vap.GetAPIVersion(), binding.GetAPIVersion())
	}
	if fp, _, _ := unstructured.NestedString(vap.Object, "spec", "failurePolicy"); fp != "Fail" {
		t.Errorf("failurePolicy = %q", fp)
	}
	rules, _, _ := unstructured.NestedSlice(vap.Object, "spec", "matchConstraints", "resourceRules")
	if len(rules) != 1 {
		t.Fatalf("resourceRules = %v", rules)
	}
	r := rules[0].(map[string]any)
	groups, _, _ := unstructured.NestedStringSlice(r, "apiGroups")
	ops, _, _ := unstructured.NestedStringSlice(r, "operations")
	res, _, _ := unstructured.NestedStringSlice(r, "resources")
	if !slices.Equal(groups, []string{group}) || !slices.Equal(ops, []string{"UPDATE"}) || !slices.Equal(res, []string{"workflowexecutions", "workflowexecutions/status"}) {
		t.Errorf("policy matches %v %v %v; want %s UPDATE of workflowexecutions and /status", groups, ops, res, group)
	}
	validations, _, _ := unstructured.NestedSlice(vap.Object, "spec", "validations")
	if len(validations) != 1 {
		t.Fatalf("validations = %v", validations)
	}
	s, _, _ := unstructured.NestedString(validations[0].(map[string]any), "expression")
	for _, w := range []string{"has(oldObject.status)", "has(oldObject.status.phase)", "'Completed', 'Failed'", "object.status.phase == oldObject.status.phase"} {
		if !strings.Contains(s, w) {
			t.Errorf("policy lacks %q:\n%s", w, s)
		}
	}
	if name, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); name != vap.GetName() {
		t.Errorf("binding names policy %q, want %q", name, vap.GetName())
	}
	if actions, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !slices.Equal(actions, []string{"Deny"}) {
		t.Errorf("validationActions = %v, want [Deny]", actions)
	}
}

// policyFromConfig reads config/policy/*.yaml, the plain manifests of the
// policies that the root module's suites apply, and returns the terminal
// phase policy.
func policyFromConfig(t *testing.T) (vap, binding *unstructured.Unstructured) {
	t.Helper()
	vap, binding = configPolicy(t, "targetlock-terminal-is-final")
	assertTerminalPolicy(t, vap, binding, "targetlock.io")
	return vap, binding
}

// configPolicy returns the policy name of config/policy/*.yaml and its
// binding.
func configPolicy(t *testing.T, name string) (vap, binding *unstructured.Unstructured) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "policy", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("config/policy/*.yaml: %v %v", files, err)
	}
	for _, f := range files {
		for _, o := range decodeAll(t, f) {
			switch o.GetKind() {
			case "ValidatingAdmissionPolicy":
				if o.GetName() == name {
					vap = o
				}
			case "ValidatingAdmissionPolicyBinding":
				if o.GetName() == name {
					binding = o
				}
			default:
				t.Errorf("%s holds a %s: every config/policy/*.yaml document must be an object to apply", f, o.GetKind())
			}
		}
	}
	if vap == nil || binding == nil {
		t.Fatalf("config/policy lacks the policy %s or its binding", name)
	}
	return vap, binding
}

func decodeAll(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// The CRD names the install checks with lookup are those the chart renders.
func TestCRDLookupNamesEveryRenderedCRD(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "templates", "_helpers.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)define "targetlock.crdNames" -}}\n(.*?)\n\{\{- end`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("no targetlock.crdNames in _helpers.tpl")
	}
	listed := strings.Fields(string(m[1]))
	var rendered []string
	for _, o := range mustRender(t, nil) {
		if o.GetKind() == "CustomResourceDefinition" {
			rendered = append(rendered, o.GetName())
		}
	}
	slices.Sort(listed)
	slices.Sort(rendered)
	if len(rendered) == 0 || !slices.Equal(listed, rendered) {
		t.Errorf("targetlock.crdNames = %v, the chart renders %v", listed, rendered)
	}
}

// In kubernaut mode the webhook may delete Leases of the release namespace:
// not kubernaut's, where its RemediationOrchestrator keeps its locks.
func TestKubernautModeRefusesKubernautsNamespace(t *testing.T) {
	_, err := renderIn(t, "kubernaut-system", kubernautMode)
	if err == nil || !strings.Contains(err.Error(), `refusing to install into namespace "kubernaut-system"`) {
		t.Errorf("kubernaut mode in kubernaut-system: %v; want a refusal", err)
	}
	if _, err := renderIn(t, "kubernaut-system", nil); err != nil {
		t.Errorf("standalone mode in kubernaut-system: %v", err)
	}
}

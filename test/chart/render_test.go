package chart_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

const releaseNS = "targetlock-system"

var kubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

func chartDir(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "targetlock")
}

// render templates the chart as `helm template` would and returns its objects.
func render(t testing.TB, vals map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return renderIn(t, releaseNS, vals)
}

// renderIn renders the chart as `helm template -n ns` would.
func renderIn(t testing.TB, ns string, vals map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	rel, err := dryRun(t, ns, vals)
	if err != nil {
		return nil, err
	}
	return parseManifest(t, rel.Manifest), nil
}

// dryRun is a client-only install of the chart as release tl in ns: its
// manifest, hooks and notes, as `helm install --dry-run` has them.
func dryRun(t testing.TB, ns string, vals map[string]any) (*release.Release, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(&action.Configuration{})
	inst.ClientOnly, inst.DryRun, inst.IncludeCRDs = true, true, true
	inst.ReleaseName, inst.Namespace = "tl", ns
	inst.KubeVersion = kubeVersion
	return inst.Run(ch, vals)
}

// parseManifest splits a rendered manifest into its objects.
func parseManifest(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range releaseutil.SplitManifests(manifest) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func mustRender(t testing.TB, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

var modes = map[string]map[string]any{
	"cert-manager": {},
	"helm":         {"certs": map[string]any{"mode": "helm"}},
	"manual": {"certs": map[string]any{"mode": "manual", "manual": map[string]any{
		"secretName": "my-tls", "caBundle": base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n")),
	}}},
	"no-crds-monitoring": {"crds": map[string]any{"install": false}, "metrics": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true},
	}},
	"kubernaut": {"mode": "kubernaut", "metrics": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}, "grafanaDashboard": map[string]any{"enabled": true},
	}},
}

func TestLint(t *testing.T) {
	for name, vals := range modes {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir(t), vals, releaseNS, kubeVersion)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestWorkloads(t *testing.T) {
	objs := mustRender(t, nil)
	for name, replicas := range map[string]int64{"tl-targetlock-orchestrator": 3, "tl-targetlock-webhook": 2} {
		d := find(objs, "Deployment", name)
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		if got := num(d.Object, "spec", "replicas"); got != replicas {
			t.Errorf("%s replicas = %d, want %d", name, got, replicas)
		}
		checkWorkload(t, name, d)
	}
	if pdb := find(objs, "PodDisruptionBudget", ""); pdb == nil {
		t.Error("no PodDisruptionBudget for the webhook")
	} else if v := num(pdb.Object, "spec", "minAvailable"); v != 1 {
		t.Errorf("PDB minAvailable = %d", v)
	}
	one := mustRender(t, map[string]any{"webhook": map[string]any{"replicas": 1}})
	if v := num(find(one, "PodDisruptionBudget", "").Object, "spec", "maxUnavailable"); v != 1 {
		t.Error("with one webhook replica the PDB must still allow an eviction")
	}
}

// checkWorkload checks Deployment d: its selector, its pod's security and
// anti-affinity, and its container.
func checkWorkload(t *testing.T, name string, d *unstructured.Unstructured) {
	t.Helper()
	sel, _, _ := unstructured.NestedStringMap(d.Object, "spec", "selector", "matchLabels")
	labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod labels %v", name, k, v, labels)
		}
	}
	if sel["app.kubernetes.io/component"] == "" || sel["app.kubernetes.io/instance"] != "tl" {
		t.Errorf("%s: selector %v lacks instance/component", name, sel)
	}
	pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
		t.Errorf("%s: pod may run as root", name)
	}
	if p, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type"); p != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile = %q", name, p)
	}
	containers, _, _ := unstructured.NestedSlice(pod, "containers")
	c := containers[0].(map[string]any)
	checkContainer(t, name, c)
	if _, ok, _ := unstructured.NestedMap(pod, "affinity", "podAntiAffinity"); !ok {
		t.Errorf("%s: no default anti-affinity", name)
	}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	if !contains(args, "--lease-duration=30s") || !contains(args, "--claim-grace=30s") {
		t.Errorf("%s: args %v do not share the lock settings", name, args)
	}
}

// checkContainer checks a workload's container: locked down, POD_NAME
// from the downward API, and probes.
func checkContainer(t *testing.T, name string, c map[string]any) {
	t.Helper()
	if esc, _, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); esc {
		t.Errorf("%s: privilege escalation allowed", name)
	}
	if ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !ro {
		t.Errorf("%s: root filesystem writable", name)
	}
	drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop")
	if len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("%s: capabilities.drop = %v", name, drop)
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	if !strings.Contains(toYAML(t, env), "fieldPath: metadata.name") {
		t.Errorf("%s: POD_NAME not from the downward API", name)
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if _, ok := c[probe]; !ok {
			t.Errorf("%s: no %s", name, probe)
		}
	}
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	for mode, vals := range map[string]map[string]any{"standalone": nil, "kubernaut": {"mode": "kubernaut"}} {
		t.Run(mode, func(t *testing.T) {
			objs := mustRender(t, vals)
			for _, o := range objs {
				if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
					continue
				}
				rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
				for _, r := range rules {
					checkRule(t, mode, o, r.(map[string]any))
				}
			}
			wh := find(objs, "Role", "tl-targetlock-webhook")
			if wh == nil || !strings.Contains(toYAML(t, wh.Object["rules"]), "update") || !strings.Contains(toYAML(t, wh.Object["rules"]), "delete") {
				t.Error("the webhook cannot claim and release Leases")
			}
		})
	}
}

// checkRule checks one rule of Role or ClusterRole o, rendered in mode.
func checkRule(t *testing.T, mode string, o *unstructured.Unstructured, rule map[string]any) {
	t.Helper()
	res, _, _ := unstructured.NestedStringSlice(rule, "resources")
	verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
	if contains(res, "*") || contains(verbs, "*") {
		t.Errorf("%s %s grants a wildcard: %v", o.GetKind(), o.GetName(), rule)
	}
	if contains(res, "leases") {
		checkLeaseRule(t, mode, o, verbs)
	}
	// Retention's delete is granted only with a TTL (TestRetentionMayDeleteOnlyWithTTL).
	if contains(res, "remediationrequests") && (contains(verbs, "delete") || contains(verbs, "create")) {
		t.Errorf("%s may create or delete RemediationRequests", o.GetName())
	}
	if contains(res, "workflowexecutions") && strings.HasPrefix(o.GetName(), "tl-targetlock-webhook") && !slices.Equal(verbs, []string{"get", "list", "watch"}) {
		t.Errorf("the webhook may %v WorkflowExecutions", verbs)
	}
	if contains(res, "secrets") {
		t.Errorf("%s reads Secrets", o.GetName())
	}
}

// checkLeaseRule: Leases are written only in the release namespace (the
// webhook also deletes the claims of WFEs that ended); in kubernaut mode
// kubernaut's lock Leases are read only.
func checkLeaseRule(t *testing.T, mode string, o *unstructured.Unstructured, verbs []string) {
	t.Helper()
	kubernautLocks := o.GetKind() == "Role" && o.GetNamespace() == "kubernaut-system" && o.GetName() == "tl-targetlock-webhook-kubernaut-locks"
	if kubernautLocks {
		if mode != "kubernaut" || !slices.Equal(verbs, []string{"get", "list", "watch"}) {
			t.Errorf("%s %s: leases %v in kubernaut's namespace", o.GetKind(), o.GetName(), verbs)
		}
	} else if o.GetKind() != "Role" || o.GetNamespace() != releaseNS {
		t.Errorf("%s %s grants leases outside the release namespace", o.GetKind(), o.GetName())
	}
}

func TestCertManagerMode(t *testing.T) {
	objs := mustRender(t, nil)
	vwc := find(objs, "ValidatingWebhookConfiguration", "")
	if got := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != releaseNS+"/tl-targetlock-webhook-cert" {
		t.Errorf("inject-ca-from = %q", got)
	}
	cert := find(objs, "Certificate", "tl-targetlock-webhook-cert")
	if cert == nil {
		t.Fatal("no serving Certificate")
	}
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	for _, want := range []string{"tl-targetlock-webhook." + releaseNS + ".svc", "tl-targetlock-webhook." + releaseNS + ".svc.cluster.local"} {
		if !contains(dns, want) {
			t.Errorf("Certificate dnsNames %v lack %s", dns, want)
		}
	}
	if p, _, _ := unstructured.NestedString(cert.Object, "spec", "privateKey", "rotationPolicy"); p != "Always" {
		t.Errorf("private key rotationPolicy = %q", p)
	}
	if count(objs, "Issuer") != 2 || count(objs, "Certificate") != 2 {
		t.Errorf("want a self-signed and a CA Issuer, a CA and a serving Certificate; got %d issuers, %d certificates", count(objs, "Issuer"), count(objs, "Certificate"))
	}
	assertWebhook(t, vwc)
	assertWebhook(t, find(objs, "MutatingWebhookConfiguration", ""))
	if count(objs, "CustomResourceDefinition") != 2 {
		t.Errorf("CRDs = %d, want 2", count(objs, "CustomResourceDefinition"))
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is not kept on uninstall", o.GetName())
		}
	}
}

func assertWebhook(t *testing.T, vwc *unstructured.Unstructured) {
	t.Helper()
	s := toYAML(t, vwc.Object)
	path, sideEffects := "path: /validate-workflowexecution", "sideEffects: NoneOnDryRun"
	if vwc.GetKind() == "MutatingWebhookConfiguration" {
		path, sideEffects = "path: /label-workflowexecution", "sideEffects: None"
	}
	for _, want := range []string{sideEffects, "failurePolicy: Fail", "- CREATE", "workflowexecutions",
		"admissionReviewVersions:\n  - v1", path, "timeoutSeconds: 5"} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q:\n%s", vwc.GetKind(), want, s)
		}
	}
	// Every namespace is guarded, the release's included; only CREATEs are
	// sent. Only the labelling skips what already carries the label (the
	// validating webhook refuses a wrong one).
	unwanted := []string{"UPDATE", "namespaceSelector", "objectSelector"}
	if vwc.GetKind() == "MutatingWebhookConfiguration" {
		unwanted = unwanted[:2]
		if want := "objectSelector:\n    matchExpressions:\n    - key: targetlock.io/target-hash\n      operator: DoesNotExist"; !strings.Contains(s, want) {
			t.Errorf("%s lacks %q:\n%s", vwc.GetKind(), want, s)
		}
	}
	for _, unwanted := range unwanted {
		if strings.Contains(s, unwanted) {
			t.Errorf("%s has %q:\n%s", vwc.GetKind(), unwanted, s)
		}
	}
}

func TestHelmModeIssuesAVerifiableCertificate(t *testing.T) {
	objs := mustRender(t, modes["helm"])
	secret := find(objs, "Secret", "tl-targetlock-webhook-tls")
	if secret == nil {
		t.Fatal("no serving Secret")
	}
	data, _, _ := unstructured.NestedStringMap(secret.Object, "data")
	vwc := find(objs, "ValidatingWebhookConfiguration", "")
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	caBundle, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
	if caBundle == "" || caBundle != data["ca.crt"] {
		t.Fatal("caBundle is not the Secret's CA")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(decode(t, caBundle)) {
		t.Fatal("caBundle holds no certificate")
	}
	block, _ := pem.Decode(decode(t, data["tls.crt"]))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tl-targetlock-webhook." + releaseNS + ".svc", "tl-targetlock-webhook." + releaseNS + ".svc.cluster.local"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", name, err)
		}
	}
}

func TestManualModeAndBadValues(t *testing.T) {
	objs := mustRender(t, modes["manual"])
	if count(objs, "Certificate") != 0 || find(objs, "Secret", "") != nil {
		t.Error("manual mode must not create certificates or Secrets")
	}
	if !strings.Contains(toYAML(t, find(objs, "Deployment", "tl-targetlock-webhook").Object), "secretName: my-tls") {
		t.Error("the webhook does not mount the user's Secret")
	}
	for name, vals := range map[string]map[string]any{
		"manual without a secret":  {"certs": map[string]any{"mode": "manual", "manual": map[string]any{"caBundle": "eA=="}}},
		"manual without a bundle":  {"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "x"}}},
		"manual bundle not PEM":    {"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "x", "caBundle": "eA=="}}},
		"trusted namespace typo":   {"tenancy": map[string]any{"trustedNamespaces": []any{"Team A"}}},
		"unknown certs mode":       {"certs": map[string]any{"mode": "vault"}},
		"timeout beyond 30s":       {"webhook": map[string]any{"timeoutSeconds": 60}},
		"failure policy misspelt":  {"webhook": map[string]any{"failurePolicy": "fail"}},
		"duration not a duration":  {"lock": map[string]any{"duration": "thirty"}},
		"unknown top-level value":  {"replicas": 3},
		"unknown mode":             {"mode": "both"},
		"kubernaut namespace typo": {"mode": "kubernaut", "kubernaut": map[string]any{"namespace": "Kubernaut System"}},
		"unknown kubernaut value":  {"kubernaut": map[string]any{"lockNamespace": "x"}},
	} {
		if _, err := render(t, vals); err == nil {
			t.Errorf("%s: rendered without an error", name)
		}
	}
}

// Installed where the control plane or other controllers keep their own
// Leases (leader election), the chart's Roles could update and delete
// them: it refuses, saying where to install. RBAC cannot narrow a Role to
// targetlock's Leases (no label selectors), so the namespace must be its own.
func TestRefusesControlPlaneNamespaces(t *testing.T) {
	for _, ns := range []string{"kube-system", "default", "kube-node-lease", "kube-public", "monitoring", "cert-manager"} {
		_, err := renderIn(t, ns, nil)
		if err == nil || !strings.Contains(err.Error(), "refusing to install into namespace \""+ns+"\"") || !strings.Contains(err.Error(), "targetlock-system") {
			t.Errorf("-n %s: %v; want a refusal naming a namespace to use", ns, err)
		}
	}
}

// Who may claim what reaches both components; only the webhook checks
// tokens, against the orchestrator's ServiceAccount; SubjectAccessReviews
// are granted only when the chart uses them.
func TestTenancyFlags(t *testing.T) {
	orchUser := "--orchestrator-user=system:serviceaccount:" + releaseNS + ":tl-targetlock-orchestrator"
	objs := mustRender(t, nil)
	hook := toYAML(t, find(objs, "Deployment", "tl-targetlock-webhook").Object)
	if !strings.Contains(hook, orchUser) || strings.Contains(hook, "--trusted-") || strings.Contains(hook, "--authorize-verb") {
		t.Errorf("default webhook args:\n%s", hook)
	}
	if strings.Contains(toYAML(t, find(objs, "ClusterRole", "tl-targetlock-webhook").Object), "subjectaccessreviews") {
		t.Error("the webhook may create SubjectAccessReviews without tenancy.authorizeVerb")
	}
	objs = mustRender(t, map[string]any{"tenancy": map[string]any{
		"trustedNamespaces": []any{"ops", "monitoring"}, "trustedServiceAccounts": []any{"ci/deployer"}, "authorizeVerb": "patch"}})
	hook = toYAML(t, find(objs, "Deployment", "tl-targetlock-webhook").Object)
	orch := toYAML(t, find(objs, "Deployment", "tl-targetlock-orchestrator").Object)
	for _, want := range []string{"--trusted-namespaces=ops,monitoring", "--trusted-service-accounts=ci/deployer", "--authorize-verb=patch", orchUser} {
		if !strings.Contains(hook, want) {
			t.Errorf("webhook args lack %s", want)
		}
	}
	if !strings.Contains(orch, "--trusted-namespaces=ops,monitoring") {
		t.Error("orchestrator args lack --trusted-namespaces")
	}
	if !strings.Contains(toYAML(t, find(objs, "ClusterRole", "tl-targetlock-webhook").Object), "subjectaccessreviews") {
		t.Error("tenancy.authorizeVerb without the RBAC to create SubjectAccessReviews")
	}
	// A verb that does not mean write access would let readers hold objects.
	for _, verb := range []string{"get", "list", "watch", "create"} {
		if _, err := render(t, map[string]any{"tenancy": map[string]any{"authorizeVerb": verb}}); err == nil {
			t.Errorf("tenancy.authorizeVerb=%s rendered without an error", verb)
		}
	}
}

// TestEnforcement: webhook.enforcement is the webhook's --enforcement and
// the ValidatingWebhookConfiguration's annotation, enforce by default; the
// schema refuses anything but enforce or warn.
func TestEnforcement(t *testing.T) {
	for _, mode := range []string{"", "enforce", "warn"} {
		vals := map[string]any{}
		want := or(mode, "enforce")
		if mode != "" {
			vals["webhook"] = map[string]any{"enforcement": mode}
		}
		objs := mustRender(t, vals)
		if hook := toYAML(t, find(objs, "Deployment", "tl-targetlock-webhook").Object); !strings.Contains(hook, "--enforcement="+want+"\n") {
			t.Errorf("webhook.enforcement=%q: the webhook's args lack --enforcement=%s", mode, want)
		}
		vwc := find(objs, "ValidatingWebhookConfiguration", "tl-targetlock")
		if got := vwc.GetAnnotations()["targetlock.io/enforcement"]; got != want {
			t.Errorf("webhook.enforcement=%q: annotation targetlock.io/enforcement %q, want %q", mode, got, want)
		}
	}
	for _, bad := range []string{"Warn", "audit", "dryrun"} {
		if _, err := render(t, map[string]any{"webhook": map[string]any{"enforcement": bad}}); err == nil || !strings.Contains(err.Error(), "enforcement") {
			t.Errorf("webhook.enforcement=%s: %v, want refused by the schema", bad, err)
		}
	}
}

// TestPolicyReports: by default the webhook writes Policy Reports and may
// get, create and update reports.openreports.io, nothing more; disabled,
// neither.
func TestPolicyReports(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		var vals map[string]any
		if !enabled {
			vals = map[string]any{"webhook": map[string]any{"policyReports": map[string]any{"enabled": false}}}
		}
		objs := mustRender(t, vals)
		hook := toYAML(t, find(objs, "Deployment", "tl-targetlock-webhook").Object)
		if !strings.Contains(hook, "--policy-reports="+strconv.FormatBool(enabled)+"\n") {
			t.Errorf("policyReports.enabled=%t: the webhook's args lack --policy-reports=%t", enabled, enabled)
		}
		rules, _, _ := unstructured.NestedSlice(find(objs, "ClusterRole", "tl-targetlock-webhook").Object, "rules")
		var verbs []string
		for _, r := range rules {
			if groups, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "apiGroups"); contains(groups, "openreports.io") {
				verbs, _, _ = unstructured.NestedStringSlice(r.(map[string]any), "verbs")
			}
		}
		if want := map[bool][]string{true: {"get", "create", "update"}}[enabled]; !slices.Equal(verbs, want) {
			t.Errorf("policyReports.enabled=%t: reports verbs %v, want %v", enabled, verbs, want)
		}
	}
}

// By default only Prometheus in the monitoring namespace may reach the
// metrics, never a pod of any namespace that calls itself Prometheus; the
// webhook port stays open to the API server, the probe port to the kubelet.
func TestNetworkPolicies(t *testing.T) {
	objs := mustRender(t, nil)
	for _, component := range []string{"orchestrator", "webhook"} {
		np := find(objs, "NetworkPolicy", "tl-targetlock-"+component)
		if np == nil {
			t.Fatalf("no NetworkPolicy for the %s", component)
		}
		s := toYAML(t, np.Object)
		for _, want := range []string{"port: 8080", "app.kubernetes.io/name: prometheus", "kubernetes.io/metadata.name: monitoring", "port: 8081", "app.kubernetes.io/component: " + component} {
			if !strings.Contains(s, want) {
				t.Errorf("%s NetworkPolicy lacks %q:\n%s", component, want, s)
			}
		}
		if strings.Contains(s, "namespaceSelector: {}") {
			t.Errorf("%s NetworkPolicy admits any namespace:\n%s", component, s)
		}
		if open := strings.Contains(s, "port: 9443"); open != (component == "webhook") {
			t.Errorf("%s NetworkPolicy: webhook port open = %v:\n%s", component, open, s)
		}
	}
	if count(mustRender(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}}), "NetworkPolicy") != 0 {
		t.Error("networkPolicy.enabled=false still renders NetworkPolicies")
	}
}

func TestOptionalObjects(t *testing.T) {
	objs := mustRender(t, modes["no-crds-monitoring"])
	if count(objs, "CustomResourceDefinition") != 0 {
		t.Error("crds.install=false still installs CRDs")
	}
	rule := find(objs, "PrometheusRule", "")
	if rule == nil || find(objs, "ServiceMonitor", "") == nil {
		t.Fatal("monitoring objects missing")
	}
	s := toYAML(t, rule.Object)
	for _, alert := range []string{"TargetlockLeaseAPIErrors", "TargetlockWebhookDenialSpike", "TargetlockWebhookErrors", "TargetlockWebhookCertificateExpiring"} {
		if !strings.Contains(s, alert) {
			t.Errorf("PrometheusRule lacks %s", alert)
		}
	}
	plain := mustRender(t, nil)
	if find(plain, "ServiceMonitor", "") != nil || find(plain, "PrometheusRule", "") != nil {
		t.Error("monitoring objects rendered by default")
	}
}

func toYAML(t testing.TB, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode(t testing.TB, b64 string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// num reads a number from decoded YAML, where numbers are float64.
func num(obj map[string]any, fields ...string) int64 {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, fields...)
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	}
	return -1
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Metrics answer only authenticated, authorized scrapers: both components
// may review tokens and access, a metrics-reader ClusterRole is there to
// bind scrapers to, and the ServiceMonitor scrapes over HTTPS with its
// token.
func TestMetricsAreAuthenticated(t *testing.T) {
	objs := mustRender(t, map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true},
		"readers": []any{map[string]any{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}}}})
	auth := find(objs, "ClusterRole", "tl-targetlock-metrics-auth")
	if auth == nil || !strings.Contains(toYAML(t, auth.Object), "tokenreviews") || !strings.Contains(toYAML(t, auth.Object), "subjectaccessreviews") {
		t.Fatalf("no ClusterRole to review tokens and access: %v", auth)
	}
	binding := toYAML(t, find(objs, "ClusterRoleBinding", "tl-targetlock-metrics-auth").Object)
	for _, sa := range []string{"tl-targetlock-orchestrator", "tl-targetlock-webhook"} {
		if !strings.Contains(binding, "name: "+sa) {
			t.Errorf("%s may not review scrapers:\n%s", sa, binding)
		}
	}
	reader := find(objs, "ClusterRole", "tl-targetlock-metrics-reader")
	if reader == nil || !strings.Contains(toYAML(t, reader.Object), "/metrics") {
		t.Fatalf("no metrics-reader ClusterRole: %v", reader)
	}
	if rb := find(objs, "ClusterRoleBinding", "tl-targetlock-metrics-reader"); rb == nil || !strings.Contains(toYAML(t, rb.Object), "prometheus-k8s") {
		t.Error("metrics.readers are not bound to the metrics-reader ClusterRole")
	}
	sm := toYAML(t, find(objs, "ServiceMonitor", "").Object)
	for _, want := range []string{"scheme: https", "bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "insecureSkipVerify: true"} {
		if !strings.Contains(sm, want) {
			t.Errorf("ServiceMonitor lacks %q:\n%s", want, sm)
		}
	}
	for _, d := range []string{"tl-targetlock-orchestrator", "tl-targetlock-webhook"} {
		if strings.Contains(toYAML(t, find(objs, "Deployment", d).Object), "--metrics-insecure") {
			t.Errorf("%s serves plain HTTP by default", d)
		}
	}
}

// metrics.insecure turns authenticated metrics into plain HTTP, for local
// use: no reviews granted, the ServiceMonitor and both binaries on HTTP.
func TestMetricsInsecure(t *testing.T) {
	insecure := mustRender(t, map[string]any{"metrics": map[string]any{"insecure": true, "serviceMonitor": map[string]any{"enabled": true}}})
	if find(insecure, "ClusterRole", "tl-targetlock-metrics-auth") != nil {
		t.Error("metrics.insecure still grants token and access reviews")
	}
	if !strings.Contains(toYAML(t, find(insecure, "ServiceMonitor", "").Object), "scheme: http\n") {
		t.Error("metrics.insecure: the ServiceMonitor does not scrape plain HTTP")
	}
	for _, d := range []string{"tl-targetlock-orchestrator", "tl-targetlock-webhook"} {
		if !strings.Contains(toYAML(t, find(insecure, "Deployment", d).Object), "--metrics-insecure") {
			t.Errorf("metrics.insecure: %s lacks --metrics-insecure", d)
		}
	}
}

package chart_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// testHook is the helm test pod of a render.
func testHook(t *testing.T, objs []*unstructured.Unstructured) *corev1.Pod {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Pod" && o.GetAnnotations()["helm.sh/hook"] == "test" {
			p := &corev1.Pod{}
			if err := runtimeConvert(o, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatal("no helm test pod")
	return nil
}

// renderHooks renders the chart's hooks as `helm template` prints them.
func renderHooks(t *testing.T, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	rel, err := dryRun(t, releaseNS, vals)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, h := range rel.Hooks {
		objs = append(objs, parseManifest(t, h.Manifest)...)
	}
	return objs
}

func runtimeConvert(u *unstructured.Unstructured, into any) error {
	raw, err := yaml.Marshal(u.Object)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(raw, into)
}

// `helm test` runs `webhook certs verify --dry-run-create` for the release
// in a restricted pod, as a ServiceAccount of its own; its Role grants the
// Certificate only where there is one, and the guarded group's create.
func TestHelmTestPod(t *testing.T) {
	for mode, want := range map[string]struct{ group, certificates string }{
		"cert-manager": {"targetlock.io", "tl-targetlock-webhook-cert"},
		"helm":         {"targetlock.io", ""},
		"kubernaut":    {"kubernaut.ai", "tl-targetlock-webhook-cert"},
	} {
		t.Run(mode, func(t *testing.T) {
			objs := renderHooks(t, modes[mode])
			if err := checkTestPod(testHook(t, objs)); err != nil {
				t.Error(err)
			}
			for _, o := range objs {
				if a := o.GetAnnotations(); a["helm.sh/hook"] != "test" || a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" ||
					(o.GetKind() == "Pod") != (a["helm.sh/hook-weight"] == "0") {
					t.Errorf("%s %s: hook annotations %v", o.GetKind(), o.GetName(), a)
				}
			}
			wantRules := []string{"/secrets/tl-targetlock-webhook-tls/get"}
			if want.certificates != "" {
				wantRules = append(wantRules, "cert-manager.io/certificates/"+want.certificates+"/get")
			}
			wantRules = append(wantRules, want.group+"/workflowexecutions//create")
			if got := roleRules(t, find(objs, "Role", "tl-targetlock-test")); !slices.Equal(got, wantRules) {
				t.Errorf("Role rules %v; want %v", got, wantRules)
			}
			if got := roleRules(t, find(objs, "ClusterRole", "tl-targetlock-test")); !slices.Equal(got, []string{"admissionregistration.k8s.io/validatingwebhookconfigurations/tl-targetlock/get"}) {
				t.Errorf("ClusterRole rules %v", got)
			}
		})
	}
}

func checkTestPod(p *corev1.Pod) error {
	c := p.Spec.Containers[0]
	wantArgs := []string{"certs", "verify", "--release", "tl", "-n", releaseNS, "--dry-run-create", "--dry-run-namespace", releaseNS}
	if !slices.Equal(c.Command, []string{"/webhook"}) || !slices.Equal(c.Args, wantArgs) {
		return fmt.Errorf("command %v %v; want /webhook %v", c.Command, c.Args, wantArgs)
	}
	if p.Spec.ServiceAccountName != "tl-targetlock-test" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		return fmt.Errorf("serviceAccountName %q restartPolicy %q", p.Spec.ServiceAccountName, p.Spec.RestartPolicy)
	}
	sc, psc := c.SecurityContext, p.Spec.SecurityContext
	restricted := psc != nil && ptr.Deref(psc.RunAsNonRoot, false) && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault &&
		sc != nil && ptr.Deref(sc.ReadOnlyRootFilesystem, false) && !ptr.Deref(sc.AllowPrivilegeEscalation, true) &&
		sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})
	if !restricted {
		return fmt.Errorf("not restricted: pod %+v container %+v", psc, sc)
	}
	return nil
}

// roleRules are a Role's or ClusterRole's rules as group/resource/names/verbs.
func roleRules(t *testing.T, u *unstructured.Unstructured) []string {
	t.Helper()
	role := &rbacv1.ClusterRole{}
	if err := runtimeConvert(u, role); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range role.Rules {
		got = append(got, strings.Join(r.APIGroups, ",")+"/"+strings.Join(r.Resources, ",")+"/"+strings.Join(r.ResourceNames, ",")+"/"+strings.Join(r.Verbs, ","))
	}
	return got
}

const helmTestNS = "helmtest-system"

// The test pod's RBAC is what certs verify needs, and no more: run in
// process as the hook's ServiceAccount against an installed release, every
// check gets its answer; without any one rule, one is forbidden.
func TestHelmTestRBACIsSufficientAndMinimal(t *testing.T) {
	mainInstall(t) // the CRDs
	rel, err := install(t, "ht", helmTestNS, map[string]any{"crds": map[string]any{"install": false}})
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if err := makeInert("ht-targetlock"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	certifyRelease(ctx, t)
	var pod *unstructured.Unstructured
	var roles []client.Object
	for _, h := range rel.Hooks {
		for _, u := range parseManifest(t, h.Manifest) {
			if u.GetKind() == "Pod" {
				pod = u
				continue
			}
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			if u.GetKind() == "Role" || u.GetKind() == "ClusterRole" {
				roles = append(roles, u)
			}
		}
	}
	args, _, _ := unstructured.NestedStringSlice(pod.Object, "spec", "containers", "0", "args")
	if args == nil {
		c, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
		args, _, _ = unstructured.NestedStringSlice(c[0].(map[string]any), "args")
	}
	sa := "system:serviceaccount:" + helmTestNS + ":ht-targetlock-test"
	verifyAs := func() string {
		out, _ := certsVerify(t, append(args[2:], "--as", sa, "--as-group", "system:serviceaccounts", "--as-group", "system:serviceaccounts:"+helmTestNS, "--as-group", "system:authenticated")...)
		return out
	}
	testenv.Eventually(t, 30*time.Second, func() error { return allAnswered(verifyAs()) })
	t.Logf("certs verify as %s:\n%s", sa, verifyAs())
	for _, r := range roles {
		rules, _, _ := unstructured.NestedSlice(r.(*unstructured.Unstructured).Object, "rules")
		for i := range rules {
			setRules(ctx, t, r, slices.Delete(slices.Clone(rules), i, i+1))
			testenv.Eventually(t, 30*time.Second, func() error {
				if out := verifyAs(); !strings.Contains(strings.ToLower(out), "forbidden") {
					return errors.New("no check forbidden without rule " + r.GetName() + " " + toYAML(t, rules[i]) + ":\n" + out)
				}
				return nil
			})
			setRules(ctx, t, r, rules)
			testenv.Eventually(t, 30*time.Second, func() error { return allAnswered(verifyAs()) })
		}
	}
}

// allAnswered reports an error unless every check of certs verify ran and
// none was forbidden.
func allAnswered(out string) error {
	if strings.Contains(strings.ToLower(out), "forbidden") {
		return errors.New("a check was forbidden:\n" + out)
	}
	for _, check := range []string{"webhook-configuration", "serving-secret", "certificate-ready", "dry-run-create"} {
		if !strings.Contains(out, check) {
			return errors.New("check " + check + " did not run:\n" + out)
		}
	}
	return nil
}

func setRules(ctx context.Context, t *testing.T, r client.Object, rules []any) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.GetObjectKind().GroupVersionKind())
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r), u); err != nil {
		t.Fatal(err)
	}
	u.Object["rules"] = rules
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
}

// certifyRelease writes the serving Secret cert-manager would and the CA
// into the webhook configuration, as cainjector would: so that certs verify
// runs every check.
func certifyRelease(ctx context.Context, t *testing.T) {
	t.Helper()
	caPEM, crt, key := issue(t, []string{"ht-targetlock-webhook." + helmTestNS + ".svc", "ht-targetlock-webhook." + helmTestNS + ".svc.cluster.local"}, 90*24*time.Hour)
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: helmTestNS, Name: "ht-targetlock-webhook-tls"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"ca.crt": caPEM, "tls.crt": crt, "tls.key": key}}); err != nil {
		t.Fatal(err)
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "ht-targetlock"}, v); err != nil {
		t.Fatal(err)
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = caPEM
	}
	if err := env.Client.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
}

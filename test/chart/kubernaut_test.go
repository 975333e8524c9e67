package chart_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

const kubernautNS = "kubernaut-system"

// withKubernaut makes the test API server look like a kubernaut cluster for
// the test: kubernaut's namespace and stand-ins for its CRDs
// (testdata/kubernaut-crds.yaml: no terminal rule of their own). The CRDs
// are deleted when the test ends, since a standalone install refuses a
// cluster that has them. (The namespace stays: envtest never finishes
// deleting one.)
func withKubernaut(t *testing.T) {
	t.Helper()
	apiServer(t)
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubernautNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	crds := decodeAll(t, filepath.Join("testdata", "kubernaut-crds.yaml"))
	t.Cleanup(func() { deleteCRDs(ctx, t, crds) })
	for _, crd := range crds {
		if err := env.Client.Create(ctx, crd.DeepCopy()); err != nil {
			t.Fatalf("creating %s: %v", crd.GetName(), err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error { return established(ctx, crds) })
}

// deleteCRDs deletes crds and waits until they are gone.
func deleteCRDs(ctx context.Context, t *testing.T, crds []*unstructured.Unstructured) {
	for _, crd := range crds {
		if err := env.Client.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %s: %v", crd.GetName(), err)
		}
	}
	testenv.Eventually(t, time.Minute, func() error {
		for _, crd := range crds {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(crd), &apiextensionsv1.CustomResourceDefinition{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s not deleted yet: %w", crd.GetName(), err)
			}
		}
		return nil
	})
}

// established is nil once every one of crds is Established.
func established(ctx context.Context, crds []*unstructured.Unstructured) error {
	for _, crd := range crds {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(crd), c); err != nil {
			return err
		}
		established := false
		for _, cond := range c.Status.Conditions {
			established = established || (cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue)
		}
		if !established {
			return fmt.Errorf("%s not established", crd.GetName())
		}
	}
	return nil
}

// installKubernaut installs the chart with nothing but mode=kubernaut, as
// `helm install name -n ns --create-namespace --set mode=kubernaut` would on
// a kubernaut cluster, makes its webhook inert (no webhook pod runs here)
// and uninstalls it when the test ends.
func installKubernaut(t *testing.T, name, ns string) {
	t.Helper()
	if _, err := install(t, name, ns, map[string]any{"mode": "kubernaut"}); err != nil {
		t.Fatalf("helm install --set mode=kubernaut: %v", err)
	}
	t.Cleanup(func() { uninstall(t, name, ns) })
	if err := makeInert(name + "-targetlock"); err != nil {
		t.Fatal(err)
	}
}

// uninstall uninstalls a release, as `helm uninstall` would.
func uninstall(t *testing.T, name, ns string) {
	t.Helper()
	cfg, _ := helmAction(t, ns)
	if _, err := action.NewUninstall(cfg).Run(name); err != nil {
		t.Errorf("helm uninstall %s: %v", name, err)
	}
}

// kubernautWFE is a WorkflowExecution of kubernaut's CRD.
func kubernautWFE(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kubernaut.ai/v1alpha1")
	u.SetKind("WorkflowExecution")
	u.SetNamespace(kubernautNS)
	u.SetName(name)
	u.Object["spec"] = map[string]any{"targetResource": "default/Deployment/app", "workflowRef": map[string]any{"workflowID": "restart"}}
	return u
}

// setPhase writes a WFE's status.phase through /status.
func setPhase(ctx context.Context, w *unstructured.Unstructured, phase string) error {
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(w), w); err != nil {
		return err
	}
	if err := unstructured.SetNestedField(w.Object, phase, "status", "phase"); err != nil {
		return err
	}
	return env.Client.Status().Update(ctx, w)
}

// On a kubernaut cluster `--set mode=kubernaut` alone installs the guard:
// no CRDs, no orchestrator, no mutating webhook; the validating webhook on
// kubernaut.ai CREATEs; and the API server keeps a Completed kubernaut WFE
// Completed although kubernaut's CRD (here) has no rule of its own.
func TestKubernautModeInstallsAndKeepsTerminalFinal(t *testing.T) {
	withKubernaut(t)
	const name, ns = "kn", "kn-system"
	installKubernaut(t, name, ns)
	ctx := context.Background()
	checkKubernautInstall(ctx, t, name, ns)
	wfe := checkTerminalIsFinal(ctx, t)
	checkTerminalStaysWritable(ctx, t, wfe)
}

// checkKubernautInstall checks what release name in ns installed: the
// guard, nothing else, and none of its own CRDs.
func checkKubernautInstall(ctx context.Context, t *testing.T, name, ns string) {
	c := env.Client
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: "kn-targetlock"}, vwc); err != nil {
		t.Fatal(err)
	}
	if r := vwc.Webhooks[0].Rules[0]; r.APIGroups[0] != "kubernaut.ai" || r.Resources[0] != "workflowexecutions" || r.Operations[0] != admissionregistrationv1.Create {
		t.Errorf("webhook rule %+v", r)
	}
	for _, o := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kn-targetlock-webhook"}},
		&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kn-targetlock-terminal-is-final"}},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "kn-targetlock-terminal-is-final"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "kn-targetlock-webhook-kubernaut-locks"}},
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("%T %s not installed: %v", o, o.GetName(), err)
		}
	}
	for _, o := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kn-targetlock-orchestrator"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kn-targetlock-orchestrator"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kn-targetlock-orchestrator"}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "kn-targetlock"}},
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s: %v, want not installed", o, o.GetName(), err)
		}
	}
	// Whatever CRDs the release manages, none is its own.
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := c.List(ctx, crds); err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds.Items {
		if crd.Annotations["meta.helm.sh/release-name"] == name {
			t.Errorf("kubernaut mode installed the CRD %s", crd.Name)
		}
	}
}

// checkTerminalIsFinal runs a kubernaut WFE to Completed and checks the
// policy keeps it there; it returns the WFE.
func checkTerminalIsFinal(ctx context.Context, t *testing.T) *unstructured.Unstructured {
	c := env.Client
	// A kubernaut WFE runs and completes; then its status is set back to
	// Running through /status: the policy refuses. (The API server starts
	// enforcing a new policy within moments: until it does, the write goes
	// through and is undone.)
	wfe := kubernautWFE("wfe-final")
	if err := c.Create(ctx, wfe); err != nil {
		t.Fatal(err)
	}
	if err := setPhase(ctx, wfe, "Running"); err != nil {
		t.Fatalf("Pending -> Running: %v", err)
	}
	if err := setPhase(ctx, wfe, "Completed"); err != nil {
		t.Fatalf("Running -> Completed: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		err := setPhase(ctx, wfe, "Running")
		if err == nil {
			if err := setPhase(ctx, wfe, "Completed"); err != nil {
				t.Fatalf("Running -> Completed: %v", err)
			}
			return errors.New("a Completed WFE was set back to Running")
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'kn-targetlock-terminal-is-final'") ||
			!strings.Contains(err.Error(), "wfe-final is Completed: a terminal phase is final") {
			t.Fatalf("Completed -> Running: %v; want the policy's refusal", err)
		}
		return nil
	})
	if err := setPhase(ctx, wfe, "Failed"); !apierrors.IsInvalid(err) {
		t.Errorf("Completed -> Failed: %v; want refused", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(wfe), wfe); err != nil {
		t.Fatal(err)
	}
	if phase, _, _ := unstructured.NestedString(wfe.Object, "status", "phase"); phase != "Completed" {
		t.Errorf("phase = %q, want Completed", phase)
	}
	return wfe
}

// checkTerminalStaysWritable checks the rest of a Completed WFE is
// writable, and that a Failed WFE is as final.
func checkTerminalStaysWritable(ctx context.Context, t *testing.T, wfe *unstructured.Unstructured) {
	c := env.Client
	// The rest of a terminal WFE stays writable: labels, and its status
	// with the phase unchanged.
	wfe.SetLabels(map[string]string{"audited": "true"})
	if err := c.Update(ctx, wfe); err != nil {
		t.Errorf("labelling a Completed WFE: %v", err)
	}
	if err := setPhase(ctx, wfe, "Completed"); err != nil {
		t.Errorf("Completed -> Completed: %v", err)
	}
	// A Failed WFE is as final; a WFE without status is not concerned.
	failed := kubernautWFE("wfe-failed")
	if err := c.Create(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if err := setPhase(ctx, failed, "Failed"); err != nil {
		t.Fatalf("Pending -> Failed: %v", err)
	}
	if err := setPhase(ctx, failed, "Pending"); !apierrors.IsInvalid(err) {
		t.Errorf("Failed -> Pending: %v; want refused", err)
	}
}

// Standalone mode on a kubernaut cluster is refused, pointing to
// mode=kubernaut, unless kubernaut.allowStandalone says it is wanted.
func TestStandaloneRefusedOnAKubernautCluster(t *testing.T) {
	mainInstall(t) // targetlock.io's CRDs
	withKubernaut(t)
	const name, ns = "both", "both-system"
	vals := map[string]any{"crds": map[string]any{"install": false}}
	_, err := install(t, name, ns, vals)
	if err == nil {
		uninstall(t, name, ns)
		t.Fatal("standalone install on a kubernaut cluster succeeded")
	}
	for _, want := range []string{"workflowexecutions.kubernaut.ai exists", "--set mode=kubernaut", "kubernaut.allowStandalone=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	vals["kubernaut"] = map[string]any{"allowStandalone": true}
	if _, err := install(t, name, ns, vals); err != nil {
		t.Fatalf("standalone install with kubernaut.allowStandalone=true: %v", err)
	}
	t.Cleanup(func() { uninstall(t, name, ns) })
	if err := makeInert(name + "-targetlock"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name + "-targetlock-orchestrator"}, &appsv1.Deployment{}); err != nil {
		t.Errorf("standalone install without its orchestrator: %v", err)
	}
}

// crds.install never takes over a CRD the release does not own: another
// release's, or one no Helm release installed. Its own CRDs upgrade.
func TestStandaloneRefusesForeignCRDs(t *testing.T) {
	mainInstall(t) // targetlock.io's CRDs, owned by release tl
	ctx := context.Background()
	const name, ns = "foreign", "foreign-system"
	_, err := install(t, name, ns, nil)
	if err == nil {
		uninstall(t, name, ns)
		t.Fatal("installed over release tl's CRDs")
	}
	if want := `remediationrequests.targetlock.io exists and belongs to Helm release "tl" in namespace "targetlock-system": set crds.install=false, or mode=kubernaut on a kubernaut cluster`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}

	// The same CRD, applied by hand (no Helm annotations).
	crd := &apiextensionsv1.CustomResourceDefinition{}
	key := client.ObjectKey{Name: "remediationrequests.targetlock.io"}
	if err := env.Client.Get(ctx, key, crd); err != nil {
		t.Fatal(err)
	}
	owned := crd.Annotations
	crd.Annotations = map[string]string{"helm.sh/resource-policy": "keep"}
	if err := env.Client.Update(ctx, crd); err != nil {
		t.Fatal(err)
	}
	restore := func() error {
		if err := env.Client.Get(ctx, key, crd); err != nil {
			return err
		}
		crd.Annotations = owned
		return env.Client.Update(ctx, crd)
	}
	_, err = install(t, name, ns, nil)
	if err == nil {
		uninstall(t, name, ns)
	}
	if rerr := restore(); rerr != nil {
		t.Fatalf("restoring release tl's CRD: %v", rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "remediationrequests.targetlock.io exists and belongs to no Helm release") {
		t.Errorf("install over a hand-applied CRD: %v; want refused", err)
	}

	// The owner upgrades its own CRDs.
	if err := upgrade(t, mainRelease, releaseNS, nil); err != nil {
		t.Errorf("helm upgrade of the CRDs' own release: %v", err)
	}
	if err := makeInert(mainRelease + "-targetlock"); err != nil {
		t.Fatal(err)
	}
}

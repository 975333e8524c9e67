package chart_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

const unreachableNS = "certs-unreachable"

var (
	env        *testenv.Env
	kubeconfig string
)

func TestMain(m *testing.M) { testenv.Main(m) }

// controlPlane has cert-manager's CRDs (from its Go module) and not
// targetlock's (the chart installs them). The API server also knows a local
// WFE webhook, served in-process by the RBAC test.
var controlPlane = testenv.Fixture[*testenv.Env]{Start: func() (*testenv.Env, func() error, error) {
	dir, err := moduleDir("github.com/cert-manager/cert-manager")
	if err != nil {
		return nil, nil, err
	}
	e, err := testenv.Start(testenv.Options{
		SkipOwnCRDs: true,
		CRDPaths:    []string{filepath.Join(dir, "deploy", "crds")},
		Webhooks: envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{localWebhook()},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("", "chart-test-")
	stop := func() error { _ = os.RemoveAll(tmp); return e.Stop() }
	if err != nil {
		return nil, stop, err
	}
	env, kubeconfig = e, filepath.Join(tmp, "kubeconfig")
	return e, stop, e.Kubeconfig(kubeconfig)
}}

// apiServer starts the control plane once per test binary.
func apiServer(t *testing.T) *testenv.Env {
	t.Helper()
	return controlPlane.Get(t)
}

func localWebhook() *admissionregistrationv1.ValidatingWebhookConfiguration {
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNoneOnDryRun
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "targetlock-local"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "workflowexecutions.targetlock.io",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "local", Namespace: "default", Path: ptr.To(admission.Path)},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"targetlock.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"workflowexecutions"}},
			}},
			// certs verify points a webhook that cannot be reached at this namespace.
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{unreachableNS},
			}}},
			FailurePolicy:  &fail,
			SideEffects:    &none,
			TimeoutSeconds: ptr.To[int32](10),
		}},
	}
}

// moduleDir is where the Go module cache holds a dependency's source.
func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

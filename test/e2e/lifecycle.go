package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// upgrade changes values with helm upgrade and checks that they took and
// that the webhook still guards a target.
func (e *e2e) upgrade(ctx context.Context) error {
	step("helm upgrade: orchestrator.replicas=2, webhook.timeoutSeconds=5, webhook.logLevel=debug")
	args := append(append([]string{"upgrade", e.release}, e.chartArgs()...), "-n", e.namespace, "--reuse-values", "--wait", "--timeout", "5m",
		"--set", "orchestrator.replicas=2", "--set", "webhook.timeoutSeconds=5", "--set", "webhook.logLevel=debug")
	if err := e.helm(ctx, args...); err != nil {
		return err
	}
	if _, err := e.waitPodsReady(ctx, 4); err != nil {
		return fmt.Errorf("after upgrade: %w", err)
	}
	vwcs := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	if err := e.c.List(ctx, vwcs, client.MatchingLabels{"app.kubernetes.io/instance": e.release}); err != nil {
		return err
	}
	if len(vwcs.Items) == 0 {
		return errors.New("after upgrade: no ValidatingWebhookConfiguration of the release")
	}
	for _, v := range vwcs.Items {
		for _, w := range v.Webhooks {
			if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 5 {
				return fmt.Errorf("after upgrade: webhook %s timeoutSeconds %v, want 5", w.Name, w.TimeoutSeconds)
			}
		}
	}
	// The upgraded webhook still refuses a second active WFE for one object.
	mk := func(name string) *v1alpha1.WorkflowExecution {
		return wrappers.MakeWFE(stormNS, name).Target("Deployment", stormNS, "after-upgrade").Workflow("manual").Obj()
	}
	first, second := mk("after-upgrade-1"), mk("after-upgrade-2")
	if err := e.c.Create(ctx, first); err != nil {
		return fmt.Errorf("after upgrade, the first WFE for a free object: %w", err)
	}
	if err := mustBeRefused(e.c.Create(ctx, second)); err != nil {
		return fmt.Errorf("after upgrade: %w", err)
	}
	if err := e.pluginShowsClaim(ctx, "after-upgrade"); err != nil {
		return fmt.Errorf("after upgrade: %w", err)
	}
	if err := e.c.Delete(ctx, first); err != nil {
		return err
	}
	if err := e.waitLocksReleased(ctx); err != nil {
		return fmt.Errorf("after upgrade, the deleted WFE's claim: %w", err)
	}
	return e.certsVerify(ctx)
}

// pluginShowsClaim checks through kubectl that the plugin lists the claim
// on object (held by an admitted WFE) and the webhook's refusal of a second
// WFE for it; the refusal's Event is written asynchronously.
func (e *e2e) pluginShowsClaim(ctx context.Context, object string) error {
	if err := e.kubectlPlugin(ctx, []string{object, string(lease.Claimed)}, "locks", "-A"); err != nil {
		return fmt.Errorf("locks: %w", err)
	}
	return poll(ctx, 30*time.Second, "denials -A to list the refusal", func(ctx context.Context) error {
		return e.kubectlPlugin(ctx, []string{object}, "denials", "-A")
	})
}

// mustBeRefused is nil when a CREATE of a second active WFE was refused by
// the webhook (Forbidden), as it must be.
func mustBeRefused(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return nil
	case err == nil:
		return errors.New("a second active WFE for one object was admitted")
	default:
		return fmt.Errorf("a second active WFE for one object: want Forbidden: %w", err)
	}
}

// uninstall removes the release and counts what it left behind besides the
// CRDs, which the chart keeps on purpose (crds.keep).
func (e *e2e) uninstall(ctx context.Context) (int, error) {
	step("helm uninstall")
	if err := e.helm(ctx, "uninstall", e.release, "-n", e.namespace, "--wait", "--timeout", "3m"); err != nil {
		return 0, err
	}
	if err := e.deleteClientCASecret(ctx); err != nil {
		return 0, err
	}
	var left []string
	err := poll(ctx, 2*time.Minute, "the release's objects to go", func(ctx context.Context) error {
		now, err := e.leftovers(ctx)
		if err != nil {
			return err
		}
		left = now
		if len(left) > 0 {
			return fmt.Errorf("left: %s", strings.Join(left, ", "))
		}
		return nil
	})
	if err != nil && len(left) == 0 {
		return 0, err
	}
	for _, crd := range []string{"remediationrequests.targetlock.io", "workflowexecutions.targetlock.io"} {
		if err := e.c.Get(ctx, client.ObjectKey{Name: crd}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			return 0, fmt.Errorf("CRD %s should be kept on uninstall: %w", crd, err)
		}
	}
	if len(left) > 0 {
		fmt.Printf("    leftovers: %s\n", strings.Join(left, ", "))
	}
	return len(left), nil
}

// leftovers lists what of the release remains: anything in its namespace
// but the namespace's own defaults, and any cluster-wide object that is the
// release's by label or name.
func (e *e2e) leftovers(ctx context.Context) ([]string, error) {
	var left []string
	defaults := map[string]bool{"ServiceAccount/default": true, "ConfigMap/kube-root-ca.crt": true}
	namespaced := []client.ObjectList{&corev1.PodList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ConfigMapList{},
		&corev1.ServiceAccountList{}, &appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&policyv1.PodDisruptionBudgetList{}, &coordinationv1.LeaseList{}, &cmv1.CertificateList{}, &cmv1.IssuerList{}}
	for _, l := range namespaced {
		if err := e.c.List(ctx, l, client.InNamespace(e.namespace)); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue // cert-manager's CRDs are not installed
			}
			return nil, err
		}
		kind := strings.TrimSuffix(fmt.Sprintf("%T", l), "List")
		kind = kind[strings.LastIndex(kind, ".")+1:]
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			m, _ := meta.Accessor(o)
			if !defaults[kind+"/"+m.GetName()] {
				left = append(left, fmt.Sprintf("%s %s/%s", kind, e.namespace, m.GetName()))
			}
			return nil
		})
	}
	cluster := []client.ObjectList{&rbacv1.ClusterRoleList{}, &rbacv1.ClusterRoleBindingList{},
		&admissionregistrationv1.ValidatingWebhookConfigurationList{}, &admissionregistrationv1.MutatingWebhookConfigurationList{}}
	for _, l := range cluster {
		if err := e.c.List(ctx, l); err != nil {
			return nil, err
		}
		kind := strings.TrimSuffix(fmt.Sprintf("%T", l), "List")
		kind = kind[strings.LastIndex(kind, ".")+1:]
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			m, _ := meta.Accessor(o)
			if m.GetLabels()["app.kubernetes.io/instance"] == e.release || strings.HasPrefix(m.GetName(), e.release+"-") || m.GetName() == e.release {
				left = append(left, kind+" "+m.GetName())
			}
			return nil
		})
	}
	return left, nil
}

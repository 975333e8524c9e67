package chart_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// With orchestrator.terminalRequestTTL set, the chart's RBAC lets the
// orchestrator, acting only as its ServiceAccount, delete an ended request
// once the TTL has passed: retention works as installed, not only with an
// admin's rights.
func TestRetentionDeletesWithTheChartsRBAC(t *testing.T) {
	mainInstall(t) // the CRDs
	const ns = "ttl-system"
	if _, err := install(t, "ttl", ns, map[string]any{
		"crds":         map[string]any{"install": false},
		"certs":        map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "none", "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1BPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}},
		"orchestrator": map[string]any{"terminalRequestTTL": "1s"},
	}); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if err := makeInert("ttl-targetlock"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mo := env.ManagerOptions()
	mo.Cache = manager.CacheOptions(ns)
	mgr, err := ctrl.NewManager(serviceAccountIn(ns, "ttl-targetlock-orchestrator"), mo)
	if err != nil {
		t.Fatal(err)
	}
	if err := orchestrator.Setup(ctx, mgr, orchestrator.Options{LeaseNamespace: ns, Identity: "ttl-0",
		SkipNameValidation: true, TerminalRequestTTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	start(ctx, t, mgr)

	// A request naming another namespace's object is refused at once: it
	// ends Failed without running, and is past its TTL a second later.
	tenant := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ttl-tenant-"}}
	if err := env.Client.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	rr := wrappers.MakeRR(tenant.Name, "refused").Target("Deployment", "elsewhere", "app").Fingerprint("sig").Obj()
	if err := env.Client.Create(ctx, rr); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		got := &v1alpha1.RemediationRequest{}
		switch err := env.Client.Get(ctx, client.ObjectKeyFromObject(rr), got); {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		default:
			return fmt.Errorf("request %s/%s still there, phase %q", got.Namespace, got.Name, got.Status.Phase)
		}
	})
}

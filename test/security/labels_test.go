package security_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// labelCases: labels are an index, never an authority. Each attack aims at
// bob's Deployment, whose identity label is read from a request of bob's
// own that the webhook and the orchestrator labelled (never computed here).
var labelCases = []securityCase{
	{"refused requests naming another tenant's object count in none of its history", func(t *testing.T) {
		const sig = "f2-sig"
		victim := victimHash(t, "web-f2")
		// Two requests naming bob's Deployment (the webhook labels them with
		// its true identity), one of a kind that does not exist carrying a
		// forged label: all three are refused.
		mustCreate(t, as("alice"), wrappers.MakeRR(tenantA, "f2-reach-1").Target("Deployment", tenantB, "web-f2").Fingerprint(sig).Obj())
		mustCreate(t, as("alice"), wrappers.MakeRR(tenantA, "f2-reach-2").Target("Deployment", tenantB, "web-f2").Fingerprint(sig).Obj())
		mustCreate(t, as("alice"), wrappers.MakeRR(tenantA, "f2-forged").Target("Gizmo", tenantB, "web-f2").Fingerprint(sig).
			Label(v1alpha1.TargetHashLabel, victim).Obj())
		for name, reason := range map[string]string{"f2-reach-1": "TargetNotPermitted", "f2-reach-2": "TargetNotPermitted", "f2-forged": "InvalidTarget"} {
			rr := waitRR(t, tenantA, name, func(rr *v1alpha1.RemediationRequest) error {
				if rr.Status.Phase != v1alpha1.RemediationFailed || !hasReason(rr, reason) {
					return fmt.Errorf("%s is %q, want Failed %s", name, rr.Status.Phase, reason)
				}
				return nil
			})
			if got := rr.Labels[v1alpha1.TargetHashLabel]; got == victim {
				t.Errorf("refused request %s keeps the victim's identity label", name)
			}
		}
		mustCreate(t, as("bob"), wrappers.MakeRR(tenantB, "f2-bob").Target("Deployment", tenantB, "web-f2").Fingerprint(sig).Obj())
		waitRuns(t, tenantB, "f2-bob")
	}},

	{"a tenant cannot relabel its request, the orchestrator can", func(t *testing.T) {
		victim := victimHash(t, "web-f3a")
		allowRelabel(t)
		mustCreate(t, as("alice"), wrappers.MakeRR(tenantA, "f3-own").Target("Deployment", tenantA, "f3-own").Fingerprint("f3a-sig").Obj())
		own := failRun(t, tenantA, "f3-own")
		// The policy is enforced within moments of its creation: a dry run
		// finds when, without changing anything.
		alice := as("alice")
		var last error
		testenv.Eventually(t, 30*time.Second, func() error {
			last = relabel(alice, tenantA, "f3-own", victim, client.DryRunAll)
			if last == nil {
				return errors.New("alice's relabel (dry run) was allowed")
			}
			return nil
		})
		if err := relabel(alice, tenantA, "f3-own", victim); err == nil || !isForbidden(err) || !strings.Contains(err.Error(), "only the orchestrator may change") {
			t.Fatalf("alice relabelling her request: %v; want the policy's refusal (dry run: %v)", err, last)
		}
		if err := relabel(as(orchUser, "system:serviceaccounts"), tenantA, "f3-own", victim); err != nil {
			t.Errorf("the orchestrator relabelling a request: %v", err)
		}
		// Nor her WFEs: the webhook's index of them is the same label.
		wfe := &v1alpha1.WorkflowExecution{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: tenantA, Name: own.Status.WorkflowExecutionRef.Name}, wfe); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(wfe.DeepCopy())
		wfe.Labels[v1alpha1.TargetHashLabel] = victim
		if err := alice.Patch(context.Background(), wfe, patch); !isForbidden(err) || !strings.Contains(err.Error(), "only the orchestrator may change") {
			t.Errorf("alice relabelling her WFE: %v; want the policy's refusal", err)
		}
	}},

	{"a relabelled ended request counts in no other object's history", func(t *testing.T) {
		const sig = "f3-sig"
		victim := victimHash(t, "web-f3")
		// Three requests of alice's that ran and failed on her own objects,
		// relabelled as only the orchestrator may (standing in for a cluster
		// without the policy): readers must still key them by their spec.
		for _, n := range []string{"f3-1", "f3-2", "f3-3"} {
			mustCreate(t, as("alice"), wrappers.MakeRR(tenantA, n).Target("Deployment", tenantA, n).Fingerprint(sig).Obj())
			failRun(t, tenantA, n)
			if err := relabel(as(orchUser, "system:serviceaccounts"), tenantA, n, victim); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(t, as("bob"), wrappers.MakeRR(tenantB, "f3-bob").Target("Deployment", tenantB, "web-f3").Fingerprint(sig).Obj())
		waitRuns(t, tenantB, "f3-bob")
	}},
}

// victimHash is the identity label of bob's Deployment name, as written on
// a request of bob's for it (a signal and workflow of its own). The request
// is run and failed, so that it holds nothing up.
func victimHash(t *testing.T, name string) string {
	t.Helper()
	probe := "probe-" + name
	mustCreate(t, as("bob"), wrappers.MakeRR(tenantB, probe).Target("Deployment", tenantB, name).Fingerprint(probe).Workflow("probe").Obj())
	rr := failRun(t, tenantB, probe)
	h := rr.Labels[v1alpha1.TargetHashLabel]
	if h == "" {
		t.Fatalf("bob's request %s carries no identity label", probe)
	}
	return h
}

// failRun waits for the request to run, fails its WFE (as an executor
// would) and returns the request once it has ended Failed.
func failRun(t *testing.T, ns, name string) *v1alpha1.RemediationRequest {
	t.Helper()
	rr := waitRR(t, ns, name, func(rr *v1alpha1.RemediationRequest) error {
		if rr.Status.Phase != v1alpha1.RemediationExecuting || rr.Status.WorkflowExecutionRef == nil {
			return fmt.Errorf("%s/%s is %q (%s), want Executing", ns, name, rr.Status.Phase, rr.Status.BlockMessage)
		}
		return nil
	})
	wfe := &v1alpha1.WorkflowExecution{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: rr.Status.WorkflowExecutionRef.Name}, wfe); err != nil {
		t.Fatal(err)
	}
	wfe.Status.Phase = v1alpha1.WorkflowExecutionFailed
	if err := env.Client.Status().Update(context.Background(), wfe); err != nil {
		t.Fatal(err)
	}
	return waitRR(t, ns, name, func(rr *v1alpha1.RemediationRequest) error {
		if rr.Status.Phase != v1alpha1.RemediationFailed {
			return fmt.Errorf("%s/%s is %q, want Failed", ns, name, rr.Status.Phase)
		}
		return nil
	})
}

// waitRuns waits for the request to run; it fails at once if the request
// is blocked for failures.
func waitRuns(t *testing.T, ns, name string) {
	t.Helper()
	waitRR(t, ns, name, func(rr *v1alpha1.RemediationRequest) error {
		if rr.Status.BlockReason == v1alpha1.BlockConsecutiveFailures || rr.Status.BlockReason == v1alpha1.BlockExponentialBackoff {
			t.Fatalf("%s/%s is Blocked %s: %s", ns, name, rr.Status.BlockReason, rr.Status.BlockMessage)
		}
		if rr.Status.Phase != v1alpha1.RemediationExecuting {
			return fmt.Errorf("%s/%s is %q (%s), want Executing", ns, name, rr.Status.Phase, rr.Status.BlockMessage)
		}
		return nil
	})
}

func waitRR(t *testing.T, ns, name string, ok func(*v1alpha1.RemediationRequest) error) *v1alpha1.RemediationRequest {
	t.Helper()
	rr := &v1alpha1.RemediationRequest{}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rr); err != nil {
			return err
		}
		return ok(rr)
	})
	return rr
}

// allowRelabel lets alice patch her requests and WFEs: a tenant may well be
// allowed to edit its own, and RBAC cannot restrict which fields.
func allowRelabel(t *testing.T) {
	t.Helper()
	const name = "alice-edits-requests"
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: name}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"targetlock.io"}, Resources: []string{"remediationrequests", "workflowexecutions"}, Verbs: []string{"patch", "update"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}},
	} {
		if err := env.Client.Create(context.Background(), o); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
}

// relabel sets the request's identity label to hash, as c.
func relabel(c client.Client, ns, name, hash string, opts ...client.PatchOption) error {
	rr := &v1alpha1.RemediationRequest{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rr); err != nil {
		return err
	}
	patch := client.MergeFrom(rr.DeepCopy())
	rr.Labels[v1alpha1.TargetHashLabel] = hash
	return c.Patch(context.Background(), rr, patch, opts...)
}

// applyPolicies creates every object of config/policy/*.yaml, the
// ValidatingAdmissionPolicies the chart installs, as test/kubernaut does.
func applyPolicies(ctx context.Context) error {
	objs, err := testenv.Policies(nil)
	if err != nil {
		return err
	}
	for _, u := range objs {
		if err := env.Client.Create(ctx, u); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

package security_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// claimGrace is the suite's claim grace (webhook and orchestrator): short,
// so that a case sees a forged claim lapse.
const claimGrace = 3 * time.Second

// saGroups are the groups the API server's ServiceAccount authenticator
// gives a ServiceAccount of namespace ns.
func saGroups(ns string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
}

// leaseNameOf is the Lease name of a canonical key, computed here as
// docs/design.md defines it ("targetlock-" + the first 40 hex digits of
// SHA-256 of the canonical key), not by the code under test.
func leaseNameOf(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return "targetlock-" + hex.EncodeToString(sum[:])[:40]
}

// forgeClaim writes the Lease of the object canonical as the webhook writes
// a claim, for the WFE w: what an admission forged to the webhook would
// have made it write.
func forgeClaim(t *testing.T, canonical string, w *v1alpha1.WorkflowExecution) {
	t.Helper()
	now := metav1.NowMicro()
	sum := sha256.Sum256([]byte(canonical))
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: leaseNameOf(canonical),
			Labels:      map[string]string{lease.ManagedByLabel: lease.ManagedBy, lease.TargetHashLabel: hex.EncodeToString(sum[:])[:40]},
			Annotations: map[string]string{lease.TargetAnnotation: canonical, lease.ClaimUIDAnnotation: string(w.UID)}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(w.Namespace + "/" + w.Name),
			LeaseDurationSeconds: ptr.To(int32(claimGrace / time.Second)), AcquireTime: &now, RenewTime: &now},
	}
	mustCreate(t, env.Client, l)
}

// grantWFEs lets users create WorkflowExecutions in a namespace of their own.
func grantWFEs(t *testing.T, ns string, users ...string) {
	t.Helper()
	mustCreate(t, env.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, env.Client, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wfes"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"targetlock.io"}, Resources: []string{"workflowexecutions"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{"events.k8s.io", ""}, Resources: []string{"events"}, Verbs: []string{"create"}}}})
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wfes"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "wfes"}}
	for _, u := range users {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u})
	}
	mustCreate(t, env.Client, binding)
}

// proofCases: a claim is proven by its WFE, not believed; the rate limit keys on a vouched identity.
var proofCases = []securityCase{
	{"F1: a forged claim for a parked WFE naming another object lapses with its grace", func(t *testing.T) {
		// The attacker's own WFE, admitted for its own object, never run.
		parked := newWFE(tenantA, "parked", tenantA+"/Deployment/parked")
		mustCreate(t, as("alice"), parked)
		// Its forged admission claimed the victim's object for it.
		victim := tenantB + "/Deployment.apps/victim"
		forgeClaim(t, victim, parked)
		start := time.Now()
		var last error
		n := 0
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, claimGrace+20*time.Second, true, func(ctx context.Context) (bool, error) {
			n++
			last = as("bob").Create(ctx, newWFE(tenantB, fmt.Sprintf("victim-%d", n), tenantB+"/Deployment/victim"))
			switch refusal(last) {
			case "":
				return true, nil
			case admission.ReasonClaimPending, admission.ReasonResourceBusy:
				return false, nil
			}
			return false, last
		})
		if err != nil {
			t.Fatalf("the victim's CREATE after %s: %v (poll: %v)", time.Since(start).Round(time.Second), last, err)
		}
	}},

	{"F1b: one requester's flood does not rate-limit another in the same namespace", func(t *testing.T) {
		const ns = "flooded"
		grantWFEs(t, ns, "mallory", "victor")
		ctx, stop := context.WithCancel(context.Background())
		var seq, limited atomic.Int64
		var wg sync.WaitGroup
		defer func() { stop(); wg.Wait() }()
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && seq.Load() < 2000 {
					i := seq.Add(1)
					err := as("mallory").Create(ctx, newWFE(ns, fmt.Sprintf("flood-%d", i), fmt.Sprintf("%s/Deployment/flood-%d", ns, i)))
					if refusal(err) == admission.ReasonRateLimited {
						limited.Add(1)
					}
				}
			}()
		}
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			return limited.Load() > 0, nil
		}); err != nil {
			t.Fatalf("the flood was never rate limited after %d CREATEs", seq.Load())
		}
		t.Logf("mallory rate limited after %d CREATEs", seq.Load())
		// The flood goes on while victor creates.
		for i := range 5 {
			if err := as("victor").Create(ctx, newWFE(ns, fmt.Sprintf("victor-%d", i), fmt.Sprintf("%s/Deployment/victor-%d", ns, i))); err != nil {
				t.Fatalf("victor's CREATE %d during mallory's flood: %v", i, err)
			}
		}
	}},

	{"F7: a ServiceAccount username without the ServiceAccount groups is no orchestrator", func(t *testing.T) {
		orch, err := lease.New(as(orchUser, saGroups(installNS)...), lease.Options{Namespace: installNS, Identity: "orchestrator-f7"})
		if err != nil {
			t.Fatal(err)
		}
		tok, ok, err := orch.Acquire(context.Background(), target.Key{Group: "apps", Kind: "Deployment", Namespace: tenantA, Name: "f7"})
		if err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		forged := newWFE(tenantA, "f7-forged", tenantA+"/Deployment/f7")
		forged.Annotations = map[string]string{v1alpha1.LockTokenAnnotation: tok.ID}
		// The orchestrator's username, from an authenticator that is not the
		// ServiceAccount one (an OIDC claim, an x509 CN): no such groups.
		if err := as(orchUser).Create(context.Background(), forged); refusal(err) != admission.ReasonTokenNotAccepted {
			t.Fatalf("the orchestrator's username without its groups, with its token: %v; want TokenNotAccepted", err)
		}
		own := newWFE(tenantA, "f7-own", tenantA+"/Deployment/f7")
		own.Annotations = map[string]string{v1alpha1.LockTokenAnnotation: tok.ID}
		mustCreate(t, as(orchUser, saGroups(installNS)...), own) // the real one still may
	}},

	{"F7: a trusted ServiceAccount's username without its groups is a tenant", func(t *testing.T) {
		if err := as(trustedSA).Create(context.Background(), newWFE(ciNS, "f7-node", "Node/f7-node")); refusal(err) != admission.ReasonNotPermitted {
			t.Fatalf("a trusted ServiceAccount's username without its groups, naming a Node: %v; want NotPermitted", err)
		}
		mustCreate(t, as(trustedSA, saGroups(ciNS)...), newWFE(ciNS, "f7-node-sa", "Node/f7-node-sa")) // the real one still may
	}},
}

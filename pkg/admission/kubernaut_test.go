package admission_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

const (
	kubernautNS = "kubernaut-system"
	roUser      = "system:serviceaccount:kubernaut-system:remediationorchestrator-controller"
)

// roLease is kubernaut RO's lock as its locking package writes it; the name
// is spelled out here (ro-lock- + 16 hex of SHA-256 of the target string)
// rather than taken from the code under test.
func roLease(name, holder string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: name},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](30),
			AcquireTime: &metav1.MicroTime{Time: renewed}, RenewTime: &metav1.MicroTime{Time: renewed},
		},
	}
}

// kubernautHandler guards kubernaut's WFEs as the chart's kubernaut profile
// configures the webhook: kubernaut's RO trusted, its lock honoured.
func kubernautHandler(t *testing.T, clk *clocktesting.FakeClock, objs ...client.Object) *admission.Handler {
	t.Helper()
	s := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddExecutionToScheme(s, "kubernaut.ai"); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	lock, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: "webhook-test", ClaimGrace: claimGrace, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	h, err := admission.New(admission.Options{
		Lock: lock, Resolver: targettest.Resolver(), Reader: c, Clock: clk,
		Trust:                 admission.Trust{ServiceAccounts: []string{kubernautNS + "/remediationorchestrator-controller"}},
		Kubernaut:             &admission.KubernautLock{Reader: c, Namespace: kubernautNS},
		DirectClaimsPerSecond: 0.001, DirectClaimsBurst: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fromPod(w *v1alpha1.WorkflowExecution, pod string) cradmission.Request {
	req := createRequest(w)
	req.UserInfo = authenticationv1.UserInfo{Username: roUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + kubernautNS},
		Extra: map[string]authenticationv1.ExtraValue{}}
	if pod != "" {
		req.UserInfo.Extra[admission.PodNameExtra] = authenticationv1.ExtraValue{pod}
	}
	return req
}

func TestKubernautLeaseName(t *testing.T) {
	const target = "payment/deployment/api"
	if got, want := admission.KubernautLeaseName(target), "ro-lock-"+sha256Prefix(target); got != want {
		t.Fatalf("KubernautLeaseName(%q) = %q, want %q", target, got, want)
	}
}

func TestKubernautLockHonoured(t *testing.T) {
	now := time.Now()
	const tgt = "payment/deployment/api"
	name := "ro-lock-" + sha256Prefix(tgt)
	cases := []struct {
		name    string
		lease   *coordinationv1.Lease
		pod     string
		allowed bool
	}{
		{"no RO lock", nil, "ro-b", true},
		{"live lock, holder pod", roLease(name, "ro-a", now), "ro-a", true},
		{"live lock, another RO pod", roLease(name, "ro-a", now), "ro-b", false},
		{"live lock, no pod named (not a bound token)", roLease(name, "ro-a", now), "", false},
		{"expired lock", roLease(name, "ro-a", now.Add(-31*time.Second)), "ro-b", true},
		{"a lock on another target string", roLease("ro-lock-0000000000000000", "ro-a", now), "ro-b", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			if tc.lease != nil {
				objs = append(objs, tc.lease)
			}
			h := kubernautHandler(t, clocktesting.NewFakeClock(now), objs...)
			w := &v1alpha1.WorkflowExecution{
				ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "wfe-1"},
				Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: tgt},
			}
			resp := h.Handle(context.Background(), fromPod(w, tc.pod))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %s", resp.Allowed, tc.allowed, resp.Result.Message)
			}
			if !tc.allowed && resp.Result.Details.Causes[0].Message != admission.ReasonLockHeld {
				t.Fatalf("reason = %s, want %s: %s", resp.Result.Details.Causes[0].Message, admission.ReasonLockHeld, resp.Result.Message)
			}
		})
	}
}

func TestTrustedServiceAccountNotRateLimited(t *testing.T) {
	h := kubernautHandler(t, clocktesting.NewFakeClock(time.Now()))
	// Burst 1 at 0.001/s: a second direct claim from one namespace would be
	// RateLimited; kubernaut's RO makes all of them from kubernaut-system.
	for i, tgt := range []string{"payment/deployment/a", "shop/Deployment/b", "Node/worker-1", "node/worker-2"} {
		w := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "wfe-" + string(rune('a'+i))},
			Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: tgt}}
		if resp := h.Handle(context.Background(), fromPod(w, "ro-a")); !resp.Allowed {
			t.Fatalf("CREATE %d (%s) refused: %s", i, tgt, resp.Result.Message)
		}
	}
	// A tenant of the same namespace (not the RO's identity) is limited.
	for i, want := range []bool{true, false} {
		w := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: "tenant-" + string(rune('a'+i))},
			Spec: v1alpha1.WorkflowExecutionSpec{TargetResource: kubernautNS + "/Deployment/t" + string(rune('a'+i))}}
		req := createRequest(w)
		req.UserInfo = authenticationv1.UserInfo{Username: "system:serviceaccount:kubernaut-system:someone-else"}
		if resp := h.Handle(context.Background(), req); resp.Allowed != want {
			t.Fatalf("tenant CREATE %d allowed = %v, want %v: %s", i, resp.Allowed, want, resp.Result.Message)
		}
	}
}

// sha256Prefix is kubernaut's lease-name hash: the first 16 hex digits of
// SHA-256 of the target string.
func sha256Prefix(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

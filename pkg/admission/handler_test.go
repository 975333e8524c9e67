package admission_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
)

// TestLostCompareAndSwapIsBounded: a Lease that changes on every write is
// never admitted blindly; after the bounded retries the CREATE is denied
// as retryable.
func TestLostCompareAndSwapIsBounded(t *testing.T) {
	creates := 0
	h, c := newFakeHandler(t, &interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				creates++
				return apierrors.NewAlreadyExists(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, obj.GetName())
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	resp := h.Handle(context.Background(), createRequest(newWFE("demo", "w", "demo/Deployment/app")))
	if resp.Allowed || resp.Result.Code != http.StatusConflict || !strings.Contains(resp.Result.Message, admission.ReasonContended) {
		t.Fatalf("want 409 Contended, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if creates != admission.DefaultMaxAttempts {
		t.Errorf("want %d claim attempts, got %d", admission.DefaultMaxAttempts, creates)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 0 {
		t.Errorf("want no Lease, got %d", n)
	}
}

// TestAPIErrorsNeverAdmit: whatever read or write fails, the CREATE is
// refused as retryable, never taken as "free".
func TestAPIErrorsNeverAdmit(t *testing.T) {
	boom := errors.New("etcdserver: request timed out")
	for name, funcs := range map[string]*interceptor.Funcs{
		"lease get": {Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				return boom
			}
			return c.Get(ctx, key, obj, opts...)
		}},
		"wfe list": {List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			return boom
		}},
		"lease create": {Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return apierrors.NewInternalError(boom)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := newFakeHandler(t, funcs)
			resp := h.Handle(context.Background(), createRequest(newWFE("demo", "w", "demo/Deployment/app")))
			if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "retry") {
				t.Fatalf("want 503 asking to retry, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
			}
		})
	}
}

// TestClaimantLookupFailureNeverAdmits: a claim whose WFE cannot be read
// (API error) is not taken to be stale.
func TestClaimantLookupFailureNeverAdmits(t *testing.T) {
	h, c := newFakeHandler(t, &interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*v1alpha1.WorkflowExecution); ok {
				return apierrors.NewServiceUnavailable("try later")
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	})
	if resp := h.Handle(context.Background(), createRequest(newWFE("demo", "first", "demo/Deployment/app"))); !resp.Allowed {
		t.Fatalf("first CREATE: %s", resp.Result.Message)
	}
	resp := h.Handle(context.Background(), createRequest(newWFE("demo", "second", "demo/Deployment/app")))
	if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable {
		t.Fatalf("want 503, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 1 {
		t.Errorf("want the first claim only, got %d Leases", n)
	}
}

func TestDryRunDecidesWithoutWriting(t *testing.T) {
	h, c := newFakeHandler(t, nil)
	req := createRequest(newWFE("demo", "w", "demo/Deployment/app"))
	req.DryRun = ptr.To(true)
	resp := h.Handle(context.Background(), req)
	if !resp.Allowed || resp.AuditAnnotations[admission.AnnotationReason] != admission.ReasonDryRun {
		t.Fatalf("want allowed as %s, got allowed=%v %v", admission.ReasonDryRun, resp.Allowed, resp.AuditAnnotations)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 0 {
		t.Errorf("dry run wrote %d Leases", n)
	}
}

// TestRetriedRequestIsIdempotent: the API server may call the webhook again
// for the same object; the claim already naming it admits it again.
func TestRetriedRequestIsIdempotent(t *testing.T) {
	h, _ := newFakeHandler(t, nil)
	w := newWFE("demo", "w", "demo/Deployment/app")
	for i, want := range []string{admission.ReasonClaimed, admission.ReasonAlreadyClaimed} {
		resp := h.Handle(context.Background(), createRequest(w))
		if !resp.Allowed || resp.AuditAnnotations[admission.AnnotationReason] != want {
			t.Fatalf("call %d: want allowed as %s, got allowed=%v %v %q", i, want, resp.Allowed, resp.AuditAnnotations, resp.Result.Message)
		}
	}
}

// TestDirectClaimsAreBoundedPerRequester: a requester's direct CREATEs may
// claim only so many objects so fast; other requesters, in the same
// namespace or not, and the orchestrator are not held back by it.
func TestDirectClaimsAreBoundedPerRequester(t *testing.T) {
	h, _ := newFakeHandler(t, nil)
	as := func(user string, w *v1alpha1.WorkflowExecution) cradmission.Response {
		req := createRequest(w)
		req.UserInfo.Username = user
		return h.Handle(context.Background(), req)
	}
	for i := range admission.DefaultDirectClaimsBurst {
		if resp := as("alice", newWFE("demo", fmt.Sprintf("w-%d", i), fmt.Sprintf("demo/Deployment/app-%d", i))); !resp.Allowed {
			t.Fatalf("claim %d within the burst: %s", i, resp.Result.Message)
		}
	}
	resp := as("alice", newWFE("demo", "one-more", "demo/Deployment/one-more"))
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || !strings.Contains(resp.Result.Message, admission.ReasonRateLimited) {
		t.Errorf("a claim past the burst: allowed=%v %d %s", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if resp := as("alice", newWFE("other", "w", "other/Deployment/app")); resp.Allowed {
		t.Error("the requester escaped its limit by naming another namespace")
	}
	if resp := as("bob", newWFE("demo", "bob", "demo/Deployment/bob")); !resp.Allowed {
		t.Errorf("another requester of the same namespace was held back: %s", resp.Result.Message)
	}
	if resp := as(orchestratorUser, newWFE("demo", "orch", "demo/Deployment/orch")); !resp.Allowed {
		t.Errorf("the orchestrator was held back: %s", resp.Result.Message)
	}
}

// TestStaleCacheNeverDecidesAlone: the webhook reads the Lease and the
// object's other WFEs from informers first, but a cache that lags the API
// server neither refuses a free target nor admits a busy one.
func TestStaleCacheNeverDecidesAlone(t *testing.T) {
	key := mustKey(t, "demo/Deployment/app")
	owner := newWFE("demo", "owner", "demo/Deployment/app", withLabel(v1alpha1.TargetHashLabel, key.Hash()))
	owner.UID = "uid-owner"
	ended := owner.DeepCopy()
	ended.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	claim := func(c client.Client) {
		t.Helper()
		l, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: "claimer", ClaimGrace: claimGrace})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Claim(context.Background(), lease.State{Key: key, Phase: lease.Free}, lease.Owner{Namespace: "demo", Name: "owner", UID: owner.UID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		live, cache []client.Object
		claimLive   bool
		claimCache  bool
		wantAllowed bool
	}{
		{"cache shows a claim the API server no longer has", []client.Object{ended}, []client.Object{owner}, false, true, true},
		{"cache shows an active WFE that has ended", []client.Object{ended}, []client.Object{owner}, false, false, true},
		{"cache has not seen the claim of an active WFE", []client.Object{owner}, nil, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, live, cache := newCachedHandler(t, tc.live, tc.cache)
			if tc.claimLive {
				claim(live)
			}
			if tc.claimCache {
				claim(cache)
			}
			resp := h.Handle(context.Background(), createRequest(newWFE("demo", "next", "demo/deployments/app")))
			if resp.Allowed != tc.wantAllowed {
				t.Fatalf("allowed=%v (%s), want %v", resp.Allowed, resp.Result.Message, tc.wantAllowed)
			}
			st, err := h.Lock().Inspect(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAllowed && (st.Holder != "demo/next" || st.Phase != lease.Claimed) {
				t.Errorf("after admission the live Lease is %s; want claimed by demo/next", st)
			}
			if !tc.wantAllowed && !strings.Contains(resp.Result.Message, admission.ReasonResourceBusy) {
				t.Errorf("refusal %q; want %s", resp.Result.Message, admission.ReasonResourceBusy)
			}
		})
	}
}

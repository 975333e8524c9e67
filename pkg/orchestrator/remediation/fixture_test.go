package remediation

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/orchestrator/handoff"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// The fixture's world: requests in ns, Leases in lns, one object.
const (
	ns       = "team"
	lns      = "targetlock-system"
	fallback = 30 * time.Second
	// ownHolder is the claim holder of the request "rr"'s WFE.
	ownHolder = ns + "/wfe-rr"
	// ourToken is the ID of a lock the fixture's replica took.
	ourToken = "me_1"
)

var (
	appKey = target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "app"}
	// ourLock is a lock the fixture's replica took on the object.
	ourLock = lease.Token{Key: appKey, ID: ourToken}
	epoch   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// fixture is a Reconciler over a fake API server, on a stepped clock.
type fixture struct {
	t      *testing.T
	clock  *clocktesting.FakeClock
	client client.WithWatch
	lock   *lease.Lock
	events *events.FakeRecorder
	r      *Reconciler
	// patches counts the requests' status patches sent.
	patches *atomic.Int32
}

func newFixture(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *fixture {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	clk := clocktesting.NewFakeClock(epoch)
	patches := &atomic.Int32{}
	patch := funcs.SubResourcePatch
	funcs.SubResourcePatch = func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
		patches.Add(1)
		if patch != nil {
			return patch(ctx, c, sub, obj, p, o...)
		}
		return c.SubResource(sub).Patch(ctx, obj, p, o...)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&v1alpha1.RemediationRequest{}, &v1alpha1.WorkflowExecution{}).
		WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).
		WithIndex(&v1alpha1.WorkflowExecution{}, target.HashIndex, target.IndexHash).
		WithIndex(&coordinationv1.Lease{}, lease.HolderIndex, lease.IndexHolder).
		WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
	lock, err := lease.New(c, lease.Options{Namespace: lns, Identity: "me", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	resolver := targettest.Resolver()
	rec := events.NewFakeRecorder(100)
	r := New(Config{
		Client: c, Live: c, Lock: lock, Resolver: resolver, Trust: tenancy.Trust{Namespaces: []string{lns}},
		Engine:  routing.NewEngine(c, c, resolver, routing.Options{}, clk),
		Handoff: handoff.New(c, c, lock, resolver, clk), Recorder: rec, Clock: clk, FallbackRequeue: fallback,
	})
	return &fixture{t: t, clock: clk, client: c, lock: lock, events: rec, r: r, patches: patches}
}

// request is the request name for the object, labelled as reconcile
// labels it, in phase.
func request(name, signal string, phase v1alpha1.RemediationPhase) *v1alpha1.RemediationRequest {
	return &v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{v1alpha1.TargetHashLabel: appKey.Hash()}, CreationTimestamp: metav1.NewTime(epoch.Add(-time.Hour))},
		Spec: v1alpha1.RemediationRequestSpec{
			TargetResource:    v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: ns, Name: "app"},
			SignalFingerprint: signal,
			WorkflowRef:       v1alpha1.WorkflowRef{WorkflowID: "restart"},
		},
		Status: v1alpha1.RemediationRequestStatus{Phase: phase},
	}
}

// execution is the WFE name on the object, controlled by owner if set.
func execution(name string, owner *v1alpha1.RemediationRequest, phase v1alpha1.WorkflowExecutionPhase) *v1alpha1.WorkflowExecution {
	w := &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{v1alpha1.TargetHashLabel: appKey.Hash()}},
		Spec:   v1alpha1.WorkflowExecutionSpec{TargetResource: ns + "/Deployment/app", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}},
		Status: v1alpha1.WorkflowExecutionStatus{Phase: phase},
	}
	if owner != nil {
		w.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "RemediationRequest",
			Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	}
	return w
}

// lockedBy is the object's Lease locked by holder, renewed at renewed.
func lockedBy(holder string, renewed time.Time) *coordinationv1.Lease {
	at := metav1.NewMicroTime(renewed)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: lns, Name: appKey.LeaseName(),
			Labels:      map[string]string{lease.ManagedByLabel: "targetlock", lease.TargetHashLabel: appKey.Hash()},
			Annotations: map[string]string{lease.TargetAnnotation: appKey.String()}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](30), AcquireTime: &at, RenewTime: &at},
	}
}

// claimedBy is the object's Lease claimed by the WFE holder ("ns/name").
func claimedBy(holder string, uid types.UID) *coordinationv1.Lease {
	l := lockedBy(holder, epoch)
	l.Annotations[lease.ClaimUIDAnnotation] = string(uid)
	return l
}

// get reads a request as stored.
func (f *fixture) get(name string) *v1alpha1.RemediationRequest {
	f.t.Helper()
	rr := &v1alpha1.RemediationRequest{}
	if err := f.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rr); err != nil {
		f.t.Fatal(err)
	}
	return rr
}

// lease reads the object's Lease live.
func (f *fixture) lease() lease.State {
	f.t.Helper()
	st, err := f.lock.Inspect(context.Background(), appKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// outcome is what a case expects of a request after one call.
type outcome struct {
	phase  v1alpha1.RemediationPhase
	block  v1alpha1.BlockReason // when Blocked
	reason string               // the Succeeded condition's, when ended
}

// check compares the stored request "rr" with want.
func (f *fixture) check(want outcome) {
	f.t.Helper()
	rr := f.get("rr")
	if rr.Status.Phase != want.phase {
		f.t.Errorf("phase %q, want %q (%s)", rr.Status.Phase, want.phase, rr.Status.BlockMessage)
	}
	if rr.Status.BlockReason != want.block {
		f.t.Errorf("block reason %q, want %q", rr.Status.BlockReason, want.block)
	}
	got := ""
	if c := meta.FindStatusCondition(rr.Status.Conditions, ConditionSucceeded); c != nil {
		got = c.Reason
	}
	if got != want.reason {
		f.t.Errorf("Succeeded reason %q, want %q", got, want.reason)
	}
}

package handoff

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

const (
	ns  = "team"
	lns = "targetlock-system"
)

var (
	appKey = target.Key{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "app"}
	epoch  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	holder = types.NamespacedName{Namespace: ns, Name: "wfe-a"}
)

// world is a Handoff over a fake API server on a stepped clock.
type world struct {
	t     *testing.T
	clock *clocktesting.FakeClock
	c     client.Client
	lock  *lease.Lock
	h     *Handoff
}

func newWorld(t *testing.T, objs ...client.Object) *world {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(epoch)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&coordinationv1.Lease{}, lease.HolderIndex, lease.IndexHolder).Build()
	lock, err := lease.New(c, lease.Options{Namespace: lns, Identity: "me", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, clock: clk, c: c, lock: lock, h: New(c, c, lock, targettest.Resolver(), clk)}
}

// held is the object's Lease held by holder; a claim if uid is set.
func held(by string, uid types.UID) *coordinationv1.Lease {
	at := metav1.NewMicroTime(epoch)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: lns, Name: appKey.LeaseName(),
			Labels:      map[string]string{lease.ManagedByLabel: "targetlock", lease.TargetHashLabel: appKey.Hash()},
			Annotations: map[string]string{lease.TargetAnnotation: appKey.String()}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(by), LeaseDurationSeconds: ptr.To[int32](30), AcquireTime: &at, RenewTime: &at},
	}
	if uid != "" {
		l.Annotations[lease.ClaimUIDAnnotation] = string(uid)
	}
	return l
}

func wfe(uid types.UID, phase v1alpha1.WorkflowExecutionPhase, token string) *v1alpha1.WorkflowExecution {
	return &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: holder.Name, UID: uid, Annotations: map[string]string{v1alpha1.LockTokenAnnotation: token}},
		Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: ns + "/Deployment/app"},
		Status:     v1alpha1.WorkflowExecutionStatus{Phase: phase},
	}
}

func (w *world) state() lease.State {
	w.t.Helper()
	st, err := w.lock.Inspect(context.Background(), appKey)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lease    *coordinationv1.Lease
		ended    *v1alpha1.WorkflowExecution // nil: not found
		deleted  bool                        // its UID seen deleted
		at       time.Duration
		wantWait time.Duration
		want     lease.Phase
	}{
		{name: "an ended WFE's claim: released", lease: held(holder.String(), "u1"), ended: wfe("u1", v1alpha1.WorkflowExecutionCompleted, ""), want: lease.Free},
		{name: "a WFE of that name with another UID: its predecessor's claim is not its to release", lease: held(holder.String(), "u0"),
			ended: wfe("u1", v1alpha1.WorkflowExecutionFailed, ""), want: lease.Claimed},
		{name: "a WFE not found, within the grace (a CREATE in flight): stands, look again when it ends", lease: held(holder.String(), "u1"),
			at: 10 * time.Second, wantWait: 20 * time.Second, want: lease.Claimed},
		{name: "a WFE not found whose UID was seen deleted: released at once", lease: held(holder.String(), "u1"), deleted: true, want: lease.Free},
		{name: "a WFE not found, the grace passed: released", lease: held(holder.String(), "u1"), at: time.Minute, want: lease.Free},
		{name: "another WFE's claim: left alone", lease: held(ns+"/wfe-b", "u2"), want: lease.Claimed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.lease)
			w.state() // first seen at epoch: a claim's grace runs on the reader's clock
			w.clock.SetTime(epoch.Add(tc.at))
			if tc.deleted {
				q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
				defer q.ShutDown()
				w.h.Tombstones().Delete(context.Background(), event.DeleteEvent{Object: wfe("u1", v1alpha1.WorkflowExecutionRunning, "")}, q)
				if q.Len() != 1 {
					t.Fatalf("the deleted WFE was not enqueued (%d queued)", q.Len())
				}
			}
			wait, err := w.h.Release(context.Background(), holder, tc.ended)
			if err != nil || wait != tc.wantWait {
				t.Fatalf("Release: %s, %v; want %s", wait, err, tc.wantWait)
			}
			if st := w.state(); st.Phase != tc.want {
				t.Errorf("lease %s, want %s", st, tc.want)
			}
		})
	}
}

func TestReleaseLock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		want  lease.Phase
	}{
		{name: "the lock the ended WFE's token holds (no webhook): released", lease: held("me_1", ""), want: lease.Free},
		{name: "another token's lock: left alone", lease: held("other_1", ""), want: lease.Locked},
		{name: "a claim (the webhook's): left to Release", lease: held(holder.String(), "u1"), want: lease.Claimed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.lease)
			if err := w.h.ReleaseLock(context.Background(), wfe("u1", v1alpha1.WorkflowExecutionCompleted, "me_1")); err != nil {
				t.Fatal(err)
			}
			if st := w.state(); st.Phase != tc.want {
				t.Errorf("lease %s, want %s", st, tc.want)
			}
		})
	}
}

func TestReplace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		phase    v1alpha1.WorkflowExecutionPhase
		acquired bool
	}{
		{name: "a claim whose WFE ended: replaced by our lock", phase: v1alpha1.WorkflowExecutionCompleted, acquired: true},
		{name: "a claim whose WFE runs: stands", phase: v1alpha1.WorkflowExecutionRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, held(holder.String(), "u1"), wfe("u1", tc.phase, ""))
			st, err := w.lock.Peek(context.Background(), appKey)
			if err != nil {
				t.Fatal(err)
			}
			tok, acquired, err := w.h.Replace(context.Background(), st)
			if err != nil || acquired != tc.acquired {
				t.Fatalf("Replace: %t, %v; want %t", acquired, err, tc.acquired)
			}
			now := w.state()
			switch {
			case acquired && (now.Phase != lease.Locked || now.Holder != tok.ID || !strings.HasPrefix(tok.ID, "me_")):
				t.Errorf("lease %s, want locked by our token %s", now, tok.ID)
			case !acquired && now.Phase != lease.Claimed:
				t.Errorf("lease %s, want the claim standing", now)
			}
		})
	}
}

package routing

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

func TestEngineReadsCacheConfirmsLive(t *testing.T) {
	s := scheme(t)
	me := self()
	// Found by the object's label, whatever the spelling; another object's
	// busy WFE (no label of ours) is not.
	busy := wfe("busy", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{})
	busy.Spec.TargetResource = "demo/deploy/app"
	busy.Labels = map[string]string{v1alpha1.TargetHashLabel: key.Hash()}
	elsewhere := wfe("elsewhere", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{})
	elsewhere.Labels = map[string]string{v1alpha1.TargetHashLabel: "other"}
	indexed := func() *fake.ClientBuilder {
		return fake.NewClientBuilder().WithScheme(s).
			WithIndex(&v1alpha1.WorkflowExecution{}, target.HashIndex, target.IndexHash).
			WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash)
	}
	c := indexed().WithObjects(me, &elsewhere).Build()
	e := NewEngine(c, c, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now))
	if b, err := e.Check(context.Background(), me, key); err != nil || b != nil {
		t.Fatalf("Check with another object's WFE = %+v, %v", b, err)
	}
	if err := c.Create(context.Background(), &busy); err != nil {
		t.Fatal(err)
	}
	b, err := e.Check(context.Background(), me, key)
	if err != nil || b == nil || b.Reason != v1alpha1.BlockResourceBusy {
		t.Fatalf("Check = %+v, %v", b, err)
	}
	if n, err := e.FailureStreak(context.Background(), me, key); n != 0 || err != nil {
		t.Errorf("FailureStreak = %d, %v", n, err)
	}

	// A cache that has not seen the WFE end must not block: what looks
	// active is read live.
	ended := busy.DeepCopy()
	ended.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	ended.Status.CompletionTime = &metav1.Time{Time: now.Add(-time.Hour)}
	live := indexed().WithObjects(me, ended).Build()
	stale := indexed().WithObjects(me, &busy).Build()
	if b, err := NewEngine(stale, live, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now)).Check(context.Background(), me, key); err != nil || b != nil {
		t.Errorf("Check with a stale cache = %+v, %v; want the live phase (Completed long ago) to decide", b, err)
	}

	errAPI := errors.New("api down")
	broken := interceptor.NewClient(c, interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error { return errAPI },
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errAPI
		},
	})
	if _, err := NewEngine(broken, c, targettest.Resolver(), Options{}, nil).Check(context.Background(), me, key); !errors.Is(err, errAPI) {
		t.Errorf("Check with a failing cache = %v; an error must never read as clear", err)
	}
	if _, err := NewEngine(c, broken, targettest.Resolver(), Options{}, nil).Check(context.Background(), me, key); !errors.Is(err, errAPI) {
		t.Errorf("Check with a failing live read = %v; an error must never read as clear", err)
	}
}

// TestEngineReadsLiveOnlyWhatDecides: Check confirms live only an active
// peer that could block (an older one, or one executing), not a younger one
// waiting; Peek, for a request that does not hold the lock, reads nothing
// live at all and still names whom it duplicates.
func TestEngineReadsLiveOnlyWhatDecides(t *testing.T) {
	s := scheme(t)
	me := labelled(*self())
	younger := labelled(rr("younger", now, v1alpha1.RemediationPending, time.Time{}))
	older := labelled(rr("older", now.Add(-time.Hour), v1alpha1.RemediationPending, time.Time{}))
	cache := func(objs ...client.Object) client.Reader {
		return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
			WithIndex(&v1alpha1.WorkflowExecution{}, target.HashIndex, target.IndexHash).
			WithIndex(&v1alpha1.RemediationRequest{}, target.HashIndex, target.IndexHash).Build()
	}
	var liveReads int
	live := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).Build(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			liveReads++
			return errors.New("no live read expected")
		},
	})
	ctx := context.Background()

	if b, err := NewEngine(cache(me, younger), live, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now)).Check(ctx, me, key); err != nil || b != nil || liveReads != 0 {
		t.Errorf("Check beside a younger waiting duplicate = %+v, %v with %d live read(s); want clear and none", b, err, liveReads)
	}
	e := NewEngine(cache(me, older), live, targettest.Resolver(), Options{}, clocktesting.NewFakePassiveClock(now))
	if _, err := e.Check(ctx, me, key); err == nil || liveReads != 1 {
		t.Errorf("Check behind an older active request = %v with %d live read(s); want it confirmed live (1)", err, liveReads)
	}
	liveReads = 0
	b, err := e.Peek(ctx, me, key)
	if err != nil || b == nil || b.Reason != v1alpha1.BlockDuplicateInProgress || b.DuplicateOf != "ns/older" || liveReads != 0 {
		t.Errorf("Peek behind an older active request = %+v, %v with %d live read(s); want DuplicateInProgress of ns/older and none", b, err, liveReads)
	}
}

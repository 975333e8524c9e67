package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// wfeClient is a fake client holding objs; a Get of a WFE fails with
// getErr if set, and counts in gets.
func wfeClient(t *testing.T, getErr error, gets *int, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	base := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	return interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, o client.Object, opts ...client.GetOption) error {
			if gets != nil {
				*gets++
			}
			if getErr != nil {
				return getErr
			}
			return c.Get(ctx, k, o, opts...)
		},
	})
}

// wfe is a WFE of the test's key, in phase.
func wfe(name, uid string, phase v1alpha1.WorkflowExecutionPhase) *v1alpha1.WorkflowExecution {
	return wfeOf(name, uid, phase, key.String())
}

func wfeOf(name, uid string, phase v1alpha1.WorkflowExecutionPhase, tgt string) *v1alpha1.WorkflowExecution {
	w := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, UID: types.UID(uid)}}
	w.Spec.TargetResource = tgt
	w.Status.Phase = phase
	return w
}

// targetOf resolves a WFE whose target is written canonical; "unresolvable"
// fails as discovery does.
func targetOf(w *v1alpha1.WorkflowExecution) (target.Key, error) {
	if w.Spec.TargetResource == "unresolvable" {
		return target.Key{}, errServer
	}
	return target.Parse(w.Spec.TargetResource)
}

func claimOf(holder, uid string) State {
	return State{Key: key, Phase: Claimed, Holder: holder, ClaimUID: types.UID(uid), Expires: t0.Add(20 * time.Second)}
}

func TestClaimant(t *testing.T) {
	ctx := context.Background()
	c := wfeClient(t, nil, nil, wfe("wfe-1", "uid-1", v1alpha1.WorkflowExecutionRunning),
		wfeOf("elsewhere", "uid-x", v1alpha1.WorkflowExecutionPending, "demo/Deployment.apps/other"),
		wfeOf("invalid", "uid-i", v1alpha1.WorkflowExecutionPending, "not a target"),
		wfeOf("unresolved", "uid-u", v1alpha1.WorkflowExecutionPending, "unresolvable"))
	if w, err := Claimant(ctx, c, claimOf("demo/wfe-1", "uid-1"), targetOf); err != nil || w == nil || w.Name != "wfe-1" {
		t.Errorf("Claimant(stored WFE) = %v, %v; want it", w, err)
	}
	for name, st := range map[string]State{
		"malformed holder":      claimOf("wfe-1", "uid-1"),
		"not found":             claimOf("demo/wfe-2", "uid-2"),
		"same name, new UID":    claimOf("demo/wfe-1", "uid-0"),
		"names another object":  claimOf("demo/elsewhere", "uid-x"),
		"names no valid object": claimOf("demo/invalid", "uid-i"),
	} {
		if w, err := Claimant(ctx, c, st, targetOf); err != nil || w != nil {
			t.Errorf("Claimant(%s) = %v, %v; want none, no error", name, w, err)
		}
	}
	if w, err := Claimant(ctx, c, claimOf("demo/unresolved", "uid-u"), targetOf); !errors.Is(err, errServer) || w != nil {
		t.Errorf("Claimant(target not resolved) = %v, %v; want the error, never an unproven claim", w, err)
	}
	failing := wfeClient(t, errServer, nil)
	if w, err := Claimant(ctx, failing, claimOf("demo/wfe-1", "uid-1"), targetOf); !errors.Is(err, errServer) || w != nil {
		t.Errorf("Claimant(API error) = %v, %v; want the error, never a missing WFE", w, err)
	}
}

func TestStaleClaim(t *testing.T) {
	ctx := context.Background()
	var liveGets int
	parked := wfeOf("parked", "uid-p", v1alpha1.WorkflowExecutionPending, "demo/Deployment.apps/other")
	live := wfeClient(t, nil, &liveGets, wfe("done", "uid-d", v1alpha1.WorkflowExecutionCompleted), parked)
	cache := wfeClient(t, nil, nil,
		wfe("running", "uid-r", v1alpha1.WorkflowExecutionRunning), wfe("ended", "uid-e", v1alpha1.WorkflowExecutionFailed), parked)
	deleted := NewTombstones(time.Minute)
	deleted.Add("uid-gone", t0)
	for _, tc := range []struct {
		name      string
		st        State
		now       time.Time
		want      bool
		liveReads int
	}{
		{"cached, active", claimOf("demo/running", "uid-r"), t0.Add(time.Hour), false, 0},
		{"cached, ended", claimOf("demo/ended", "uid-e"), t0, true, 0},
		{"live only, ended", claimOf("demo/done", "uid-d"), t0, true, 1},
		{"missing, in grace", claimOf("demo/new", "uid-n"), t0, false, 1},
		{"missing, grace over", claimOf("demo/new", "uid-n"), t0.Add(20 * time.Second), true, 1},
		{"missing, tombstoned", claimOf("demo/gone", "uid-gone"), t0, true, 1},
		{"names another object, in grace", claimOf("demo/parked", "uid-p"), t0, false, 1},
		{"names another object, grace over", claimOf("demo/parked", "uid-p"), t0.Add(20 * time.Second), true, 1},
	} {
		liveGets = 0
		stale, err := StaleClaim(ctx, cache, live, tc.st, targetOf, deleted, tc.now)
		if err != nil || stale != tc.want || liveGets != tc.liveReads {
			t.Errorf("%s: StaleClaim = %v, %v after %d live reads; want %v after %d", tc.name, stale, err, liveGets, tc.want, tc.liveReads)
		}
	}
	failing := wfeClient(t, errServer, nil)
	if stale, err := StaleClaim(ctx, cache, failing, claimOf("demo/new", "uid-n"), targetOf, nil, t0.Add(time.Hour)); !errors.Is(err, errServer) || stale {
		t.Errorf("StaleClaim(live read fails) = %v, %v; want the error, not stale", stale, err)
	}
}

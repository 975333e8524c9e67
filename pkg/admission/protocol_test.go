package admission_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
)

func TestFencing(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/Deployment/app"
	key := mustKey(t, tgt)

	a, b := f.orchestrator("replica-a"), f.orchestrator("replica-b")
	tokA, ok, err := a.Acquire(ctx, key)
	if err != nil || !ok {
		t.Fatalf("replica-a acquiring: ok=%v err=%v", ok, err)
	}
	// replica-a pauses past its lease; replica-b takes the target over.
	f.clock.Step(lockDuration + time.Second)
	tokB, ok, err := b.Acquire(ctx, key)
	if err != nil || !ok {
		t.Fatalf("replica-b taking over: ok=%v err=%v", ok, err)
	}

	st := mustDeny(t, f, newWFE(ns, "from-a", tgt, withToken(tokA.ID)), "LockLost")
	// The holder's pod is named; its token, a capability, never is.
	if st.Code != http.StatusForbidden || !contains(st.Message, "holder replica-b)") || contains(st.Message, tokB.ID) || contains(st.Message, tokA.ID) {
		t.Errorf("stale token's denial: want 403 naming the holder's pod replica-b and no token, got %d %q", st.Code, st.Message)
	}
	mustAdmit(t, f, newWFE(ns, "from-b", tgt, withToken(tokB.ID)))
	// The claim records whose lock it replaced: replica-b's own release
	// of it (its CREATE refused later) must tell it from another's.
	if s := inspect(t, f, tgt); s.Phase != lease.Claimed || s.Holder != ns+"/from-b" || s.ClaimToken != tokB.ID {
		t.Errorf("after admission: want claimed by %s/from-b for token %s, got %s (token %q)", ns, tokB.ID, s, s.ClaimToken)
	}
	// replica-a wakes up again and retries: still refused, now by the claim.
	mustDeny(t, f, newWFE(ns, "from-a-2", tgt, withToken(tokA.ID)), "ResourceBusy")
}

func TestFencingExpiredLock(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/Deployment/app"
	tok, ok, err := f.orchestrator("replica-c").Acquire(ctx, mustKey(t, tgt))
	if err != nil || !ok {
		t.Fatalf("acquiring: ok=%v err=%v", ok, err)
	}
	// A direct CREATE may not take a live lock.
	mustDeny(t, f, newWFE(ns, "direct", tgt), "LockHeld")

	f.clock.Step(lockDuration)
	mustDeny(t, f, newWFE(ns, "late", tgt, withToken(tok.ID)), "StaleLock")
	if s := inspect(t, f, tgt); s.Phase != lease.Locked || s.Holder != tok.ID {
		t.Errorf("a denial must not write: want still locked by %s, got %s", tok.ID, s)
	}
	// A token whose lock is gone altogether is refused too.
	if err := f.orchestrator("replica-c").Release(ctx, tok); err != nil {
		t.Fatalf("releasing: %v", err)
	}
	mustDeny(t, f, newWFE(ns, "after-release", tgt, withToken(tok.ID)), "LockLost")
	mustAdmit(t, f, newWFE(ns, "direct-2", tgt))
}

func TestAdmittedButNeverStored(t *testing.T) {
	f, ns := inNewNamespace(t)
	tgt := ns + "/Deployment/app"

	// The second webhook denies this CREATE after ours, running in
	// parallel, has written its claim: the WFE is never stored.
	var first, lost string
	for i := range 2 {
		name := fmt.Sprintf("attempt-%d", i)
		st := create(t, f, newWFE(ns, name, tgt, withLabel(denyEveryOtherLabel, "true")))
		if st != nil && contains(st.Message, "deny-every-other") {
			lost = name
			break
		}
		if st == nil {
			first = name // the other webhook let it through: it owns the target now
			break
		}
		t.Fatalf("creating %s: unexpected denial %d %s", name, st.Code, st.Message)
	}
	if lost == "" {
		t.Fatalf("the second webhook never denied (first admitted: %q)", first)
	}
	s := inspect(t, f, tgt)
	if s.Phase != lease.Claimed || s.Holder != ns+"/"+lost {
		t.Fatalf("want the lost CREATE's claim on the Lease, got %s", s)
	}
	if err := f.env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: lost}, &v1alpha1.WorkflowExecution{}); err == nil {
		t.Fatalf("%s was stored, but the second webhook denied it", lost)
	}

	// Within the grace period the claim stands: the CREATE might still be stored.
	mustDeny(t, f, newWFE(ns, "within-grace", tgt), "ClaimPending")
	// Past it, the target is free again.
	f.clock.Step(claimGrace)
	mustAdmit(t, f, newWFE(ns, "after-grace", tgt))
	wantHolder(t, f, tgt, ns+"/after-grace")
}

func TestDryRunWritesNothing(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/Deployment/app"
	if err := f.env.Client.Create(ctx, newWFE(ns, "dry", tgt), client.DryRunAll); err != nil {
		t.Fatalf("dry-run CREATE: want admitted, got %v", err)
	}
	lease := &coordinationv1.Lease{}
	err := f.env.Client.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: mustKey(t, tgt).LeaseName()}, lease)
	if err == nil {
		t.Fatalf("dry-run CREATE wrote Lease %s (holder %v)", lease.Name, *lease.Spec.HolderIdentity)
	}
	// And it decided: a dry run against a busy target is denied.
	mustAdmit(t, f, newWFE(ns, "real", tgt))
	err = f.env.Client.Create(ctx, newWFE(ns, "dry-2", tgt), client.DryRunAll)
	if err == nil || !contains(err.Error(), "ResourceBusy") {
		t.Fatalf("dry-run CREATE on a busy target: want ResourceBusy, got %v", err)
	}
}

func TestTerminalFreesTarget(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := ns + "/Deployment/app"
	first := newWFE(ns, "first", tgt)
	mustAdmit(t, f, first)
	mustDeny(t, f, newWFE(ns, "second", tgt), "ResourceBusy")

	first.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	if err := f.env.Client.Status().Update(ctx, first); err != nil {
		t.Fatalf("completing %s: %v", first.Name, err)
	}
	mustAdmit(t, f, newWFE(ns, "third", tgt))
	wantHolder(t, f, tgt, ns+"/third")
}

func TestDeletedFreesTarget(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	tgt := "Node/" + ns + "-worker"
	first := newWFE(ns, "first", tgt)
	mustAdmit(t, f, first)
	if err := f.env.Client.Delete(ctx, first); err != nil {
		t.Fatalf("deleting: %v", err)
	}
	// A deleted claimant looks like a CREATE not stored yet: the claim
	// stands for the grace period (the orchestrator releases it sooner).
	mustDeny(t, f, newWFE(ns, "second", tgt), "ClaimPending")
	f.clock.Step(claimGrace)
	mustAdmit(t, f, newWFE(ns, "third", tgt))
}

func TestUpdateCannotChangeTarget(t *testing.T) {
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	w := newWFE(ns, "w", ns+"/Deployment/app")
	mustAdmit(t, f, w)
	w.Spec.Parameters = map[string]string{"replicas": "2"}
	if err := f.env.Client.Update(ctx, w); err != nil {
		t.Fatalf("an UPDATE that keeps the target: want allowed, got %v", err)
	}
	w.Spec.TargetResource = ns + "/Deployment/other"
	if err := f.env.Client.Update(ctx, w); err == nil {
		t.Fatalf("an UPDATE that changes the target was allowed")
	}
}

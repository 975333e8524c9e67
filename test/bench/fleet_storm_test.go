package main

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
)

func TestTrackerCountsOnlyNewsAfterItsList(t *testing.T) {
	kill := time.Unix(1000, 0)
	tr := newProgressTracker(nil, "ns")
	tr.track(map[string]map[string]v1alpha1.RemediationPhase{
		"a": {"rr-a": v1alpha1.RemediationExecuting},
		"b": {"rr-b": ""},
	}, "victim", nil, "100", kill)
	rr := func(name, rv string, phase v1alpha1.RemediationPhase) *v1alpha1.RemediationRequest {
		return &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv},
			Status: v1alpha1.RemediationRequestStatus{Phase: phase}}
	}
	// The victim's last write, delivered after the LIST: not the next decision.
	tr.observe(rr("rr-b", "99", v1alpha1.RemediationPending), false, kill.Add(time.Second))
	// News without a change of phase.
	tr.observe(rr("rr-a", "101", v1alpha1.RemediationExecuting), false, kill.Add(2*time.Second))
	// Another request altogether.
	tr.observe(rr("rr-c", "102", v1alpha1.RemediationCompleted), false, kill.Add(3*time.Second))
	if got := len(tr.out); got != 0 {
		t.Fatalf("counted %d moves before any decision: %v", got, tr.out)
	}
	tr.observe(rr("rr-a", "103", v1alpha1.RemediationCompleted), false, kill.Add(4*time.Second))
	tr.observe(rr("rr-b", "104", ""), true, kill.Add(5*time.Second))
	want := []time.Duration{4 * time.Second, 5 * time.Second}
	if len(tr.out) != 2 || tr.out[0] != want[0] || tr.out[1] != want[1] || len(tr.pending) != 0 {
		t.Fatalf("moves %v, pending %d; want %v and none", tr.out, len(tr.pending), want)
	}
}

func TestTrackerTimesAnExecutingRequestFromItsWFEsEnd(t *testing.T) {
	kill := time.Unix(1000, 0)
	tr := newProgressTracker(nil, "ns")
	tr.track(map[string]map[string]v1alpha1.RemediationPhase{"a": {"rr-a": v1alpha1.RemediationExecuting}}, "victim", nil, "100", kill)
	wfe := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Name: "wfe-a"}}
	tr.execution(wfe, kill.Add(-time.Second))
	wfe.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	tr.execution(wfe, kill.Add(20*time.Second)) // the engine ended it long after the kill
	rr := &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Name: "rr-a", ResourceVersion: "101"},
		Status: v1alpha1.RemediationRequestStatus{Phase: v1alpha1.RemediationCompleted, WorkflowExecutionRef: &corev1.LocalObjectReference{Name: "wfe-a"}}}
	tr.observe(rr, false, kill.Add(21*time.Second))
	if len(tr.out) != 1 || tr.out[0] != time.Second {
		t.Fatalf("moves %v; want [1s], from the WFE's end", tr.out)
	}
	if life := tr.lifetimes(); len(life) != 1 || life[0] != 21*time.Second {
		t.Fatalf("lifetimes %v; want [21s]", life)
	}
}

func TestTrackerSetsApartWhatWaitedOnTheDeadReplicasLease(t *testing.T) {
	kill := time.Unix(1000, 0)
	tr := newProgressTracker(nil, "ns")
	// The watch may deliver a claim of the victim's last CREATE before the
	// kill's LISTs are done and its objects tracked.
	tr.lease(claimLease("raced", "victim_n3", "ns/wfe-raced"), kill.Add(100*time.Millisecond))
	tr.track(map[string]map[string]v1alpha1.RemediationPhase{
		"raced":   {"rr-raced": ""},
		"locked":  {"rr-locked": ""},
		"cut-off": {"rr-cut-off": ""},
		"stored":  {"rr-stored": v1alpha1.RemediationExecuting},
		"free":    {"rr-free": ""},
		"late":    {"rr-late": ""},
	}, "victim", map[string]string{"locked": "", "cut-off": "wfe-cut-off", "stored": "wfe-stored"}, "100", kill)
	// A claim the victim's last CREATE made after its death (the API
	// server was still admitting it), and one of another replica's.
	tr.lease(claimLease("late", "victim_n1", "ns/wfe-late"), kill.Add(time.Second))
	tr.lease(claimLease("free", "other_n2", "ns/wfe-free"), kill.Add(time.Second))
	// A lock the victim took and released long before its death.
	tr.lease(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.TargetHashLabel: "stored"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("victim_n0")}}, kill.Add(-time.Minute))
	tr.execution(&v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Name: "wfe-stored"}}, kill.Add(-time.Second))
	for i, name := range []string{"rr-raced", "rr-locked", "rr-cut-off", "rr-late", "rr-stored", "rr-free"} {
		rr := &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "200"},
			Status: v1alpha1.RemediationRequestStatus{Phase: v1alpha1.RemediationFailed}}
		tr.observe(rr, false, kill.Add(time.Duration(10+i)*time.Second))
	}
	moved, held := tr.done()
	if want := []time.Duration{10 * time.Second, 11 * time.Second, 12 * time.Second, 13 * time.Second}; !slices.Equal(held, want) {
		t.Errorf("waited on the dead replica's Lease: %v; want %v (its cut-off claims and its lock)", held, want)
	}
	if want := []time.Duration{14 * time.Second, 15 * time.Second}; !slices.Equal(moved, want) {
		t.Errorf("moved by the ring: %v; want %v (a claim whose WFE was stored, another's claim)", moved, want)
	}
}

func claimLease(hash, token, holder string) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.TargetHashLabel: hash},
			Annotations: map[string]string{lease.ClaimUIDAnnotation: "uid", lease.ClaimTokenAnnotation: token}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder},
	}
}

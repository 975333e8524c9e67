package main

import (
	"strings"
	"testing"
	"time"
)

// TestPhasesSplitASampleWhole: a traced handoff is split at the event,
// the reconciles and the requests of the one that created the WFE; the
// phases add up to the sample, and another reconcile's requests are not
// among them.
func TestPhasesSplitASampleWhole(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	tr := newTracer()
	tr.events["ended ns/wfe-a"] = at(1)
	tr.reconciles = []reconcileStart{
		{id: "first", controller: "remediationrequest", object: "ns/b", at: at(2)},
		{id: "other", controller: "workflowexecution", object: "ns/wfe-a", at: at(2)},
		{id: "win", controller: "remediationrequest", object: "ns/b", at: at(10)},
	}
	tr.requests = []tracedRequest{
		{reconcile: "first", label: "PUT leases", sent: at(3), done: at(6)},
		{reconcile: "other", label: "PATCH remediationrequests/status", sent: at(3), done: at(8)},
		{reconcile: "win", label: "POST leases", sent: at(11), done: at(14)},
		{reconcile: "win", label: "GET remediationrequests", sent: at(15), done: at(17)},
		{reconcile: "win", label: "POST workflowexecutions", names: `/apis/x/v1/namespaces/ns/workflowexecutions {"metadata":{"name":"wfe-b"}}`, sent: at(18), done: at(30)},
	}
	ps, ok := tr.phases(tracedSample{start: t0, arrived: at(31), trigger: "ended ns/wfe-a", request: "ns/b"})
	if !ok {
		t.Fatal("not traced")
	}
	var sum time.Duration
	var names []string
	for _, p := range ps {
		sum += p.d
		names = append(names, p.name)
	}
	want := []string{phaseDelivery, phaseQueue, phaseEarlier, phaseCPU, "POST leases", "GET remediationrequests", "POST workflowexecutions", phaseArrival}
	if got := strings.Join(names, ", "); got != strings.Join(want, ", ") {
		t.Errorf("phases %s\nwant %s", got, strings.Join(want, ", "))
	}
	if sum != 31*time.Millisecond {
		t.Errorf("phases add up to %s, want the sample's 31ms", sum)
	}
	if _, ok := tr.phases(tracedSample{start: t0, arrived: at(31), trigger: "ended ns/wfe-x", request: "ns/b"}); ok {
		t.Error("a sample without its event was traced")
	}
}

package routing

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

var (
	now  = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	key  = target.Key{Group: "apps", Kind: "Deployment", Namespace: "demo", Name: "app"}
	opts = Options{}.Defaults()
)

func rr(name string, created time.Time, phase v1alpha1.RemediationPhase, done time.Time) v1alpha1.RemediationRequest {
	r := v1alpha1.RemediationRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.RemediationRequestSpec{
			TargetResource:    v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: "demo", Name: "app"},
			SignalFingerprint: "sig", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"},
		},
		Status: v1alpha1.RemediationRequestStatus{Phase: phase},
	}
	if !done.IsZero() {
		r.Status.CompletionTime = &metav1.Time{Time: done}
	}
	if phase == v1alpha1.RemediationFailed || phase == v1alpha1.RemediationCompleted {
		r.Status.WorkflowExecutionRef = &corev1.LocalObjectReference{Name: "wfe-" + name} // it ran
	}
	return r
}

func wfe(name string, phase v1alpha1.WorkflowExecutionPhase, workflow string, done time.Time) v1alpha1.WorkflowExecution {
	w := v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: "demo/Deployment/app", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: workflow}},
		Status:     v1alpha1.WorkflowExecutionStatus{Phase: phase},
	}
	if !done.IsZero() {
		w.Status.CompletionTime = &metav1.Time{Time: done}
	}
	return w
}

func self() *v1alpha1.RemediationRequest {
	r := rr("self", now.Add(-time.Minute), v1alpha1.RemediationPending, time.Time{})
	return &r
}

// checkCase is one input to a check and the Block it must return.
type checkCase struct {
	name  string
	in    input
	want  v1alpha1.BlockReason // "" = not blocked
	until time.Time
	skip  bool
}

// testCheck runs check on each case, at now, on key, for self() unless the
// case names its own request.
func testCheck(t *testing.T, check check, cases []checkCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now, in.Key = now, key
			if in.RR == nil {
				in.RR = self()
			}
			b := check(&in, opts)
			if tt.want == "" {
				if b != nil {
					t.Fatalf("blocked: %+v", b)
				}
				return
			}
			if b == nil || b.Reason != tt.want || b.Skip != tt.skip {
				t.Fatalf("got %+v, want reason %s skip %v", b, tt.want, tt.skip)
			}
			if !tt.until.IsZero() && !b.Until.Equal(tt.until) {
				t.Errorf("until = %v, want %v", b.Until, tt.until)
			}
			if !strings.Contains(b.Message, key.String()) {
				t.Errorf("message %q does not name the target", b.Message)
			}
		})
	}
}

func TestConsecutiveFailures(t *testing.T) {
	failed := v1alpha1.RemediationFailed
	testCheck(t, consecutiveFailures, []checkCase{
		{name: "consecutive failures at threshold", want: v1alpha1.BlockConsecutiveFailures, until: now.Add(-time.Minute + time.Hour),
			in: input{Peers: []v1alpha1.RemediationRequest{
				rr("a", now.Add(-4*time.Hour), failed, now.Add(-3*time.Minute)),
				rr("b", now.Add(-4*time.Hour), failed, now.Add(-2*time.Minute)),
				rr("c", now.Add(-4*time.Hour), failed, now.Add(-time.Minute)),
			}}},
		{name: "consecutive failures broken by a success",
			in: input{Peers: []v1alpha1.RemediationRequest{
				rr("a", now.Add(-4*time.Hour), failed, now.Add(-4*time.Minute)),
				rr("b", now.Add(-4*time.Hour), failed, now.Add(-3*time.Minute)),
				rr("ok", now.Add(-4*time.Hour), v1alpha1.RemediationCompleted, now.Add(-2*time.Minute)),
				rr("c", now.Add(-4*time.Hour), failed, now.Add(-time.Minute)),
			}}},
		{name: "consecutive failures past the cooldown",
			in: input{Peers: []v1alpha1.RemediationRequest{
				rr("a", now.Add(-4*time.Hour), failed, now.Add(-3*time.Hour)),
				rr("b", now.Add(-4*time.Hour), failed, now.Add(-3*time.Hour)),
				rr("c", now.Add(-4*time.Hour), failed, now.Add(-2*time.Hour)),
			}}},
	})
}

func TestDuplicateInProgress(t *testing.T) {
	failed := v1alpha1.RemediationFailed
	testCheck(t, duplicateInProgress, []checkCase{
		{name: "duplicate of an older active request", want: v1alpha1.BlockDuplicateInProgress,
			in: input{Peers: []v1alpha1.RemediationRequest{
				rr("newer", now, v1alpha1.RemediationPending, time.Time{}),
				rr("older", now.Add(-time.Hour), v1alpha1.RemediationExecuting, time.Time{}),
			}}},
		{name: "an executing duplicate wins even if newer", want: v1alpha1.BlockDuplicateInProgress,
			in: input{Peers: []v1alpha1.RemediationRequest{rr("newer", now, v1alpha1.RemediationExecuting, time.Time{})}}},
		{name: "oldest of the duplicates runs",
			in: input{Peers: []v1alpha1.RemediationRequest{rr("newer", now, v1alpha1.RemediationBlocked, time.Time{})}}},
		{name: "same creation time: the name breaks the tie", want: v1alpha1.BlockDuplicateInProgress,
			in: input{Peers: []v1alpha1.RemediationRequest{rr("aaa", now.Add(-time.Minute), v1alpha1.RemediationPending, time.Time{})}}},
		{name: "terminal duplicates do not block",
			in: input{Peers: []v1alpha1.RemediationRequest{rr("old", now.Add(-time.Hour), failed, now)}}},
		{name: "the original completed: skip", want: v1alpha1.BlockDuplicateInProgress, skip: true,
			in: input{RR: func() *v1alpha1.RemediationRequest { r := self(); r.Status.DuplicateOf = "ns/old"; return r }(),
				Peers: []v1alpha1.RemediationRequest{rr("old", now.Add(-time.Hour), v1alpha1.RemediationCompleted, now)}}},
		{name: "a hidden original completed after the request was made: skip", want: v1alpha1.BlockDuplicateInProgress, skip: true,
			in: input{RR: hiddenDuplicate(), Peers: []v1alpha1.RemediationRequest{inNamespace("ops", rr("old", now.Add(-time.Hour), v1alpha1.RemediationCompleted, now))}}},
		{name: "a foreign request that completed before this one was made is not its original",
			in: input{RR: hiddenDuplicate(), Peers: []v1alpha1.RemediationRequest{inNamespace("ops", rr("old", now.Add(-time.Hour), v1alpha1.RemediationCompleted, now.Add(-30*time.Minute)))}}},
	})
}

// TestDuplicateOfHidesAnotherNamespace: a request's status names an
// original in its own namespace, never one in another.
func TestDuplicateOfHidesAnotherNamespace(t *testing.T) {
	for ns, want := range map[string]string{"ns": "ns/older", "ops": "another namespace"} {
		in := input{RR: self(), Key: key, Now: now, Peers: []v1alpha1.RemediationRequest{inNamespace(ns, rr("older", now.Add(-time.Hour), v1alpha1.RemediationExecuting, time.Time{}))}}
		b := duplicateInProgress(&in, opts)
		if b == nil || b.DuplicateOf != want || (ns == "ops" && strings.Contains(b.Message, "older")) {
			t.Errorf("original in %s: %+v, want duplicateOf %q", ns, b, want)
		}
	}
	in := input{RR: self(), Key: key, Now: now, Executions: []v1alpha1.WorkflowExecution{func() v1alpha1.WorkflowExecution {
		w := wfe("secret", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{})
		w.Namespace = "ops"
		return w
	}()}}
	if b := resourceBusy(&in, opts); b == nil || b.BlockingWorkflowExecution != "another namespace" || strings.Contains(b.Message, "secret") {
		t.Errorf("a WFE in another namespace: %+v", b)
	}
}

func hiddenDuplicate() *v1alpha1.RemediationRequest {
	r := self()
	r.Status.DuplicateOf = "another namespace"
	return r
}

func inNamespace(ns string, r v1alpha1.RemediationRequest) v1alpha1.RemediationRequest {
	r.Namespace = ns
	return r
}

func TestResourceBusy(t *testing.T) {
	testCheck(t, resourceBusy, []checkCase{
		{name: "busy with an active WFE", want: v1alpha1.BlockResourceBusy,
			in: input{Executions: []v1alpha1.WorkflowExecution{wfe("w", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{})}}},
		{name: "not busy with ended WFEs",
			in: input{Executions: []v1alpha1.WorkflowExecution{wfe("w", v1alpha1.WorkflowExecutionFailed, "restart", now)}}},
		{name: "own WFE does not block",
			in: input{Executions: []v1alpha1.WorkflowExecution{func() v1alpha1.WorkflowExecution {
				w := wfe("w", "", "restart", time.Time{})
				w.OwnerReferences = []metav1.OwnerReference{{UID: "self"}}
				return w
			}()}}},
	})
}

func TestRecentlyRemediated(t *testing.T) {
	testCheck(t, recentlyRemediated, []checkCase{
		{name: "recently remediated", want: v1alpha1.BlockRecentlyRemediated, until: now.Add(4 * time.Minute),
			in: input{Executions: []v1alpha1.WorkflowExecution{wfe("w", v1alpha1.WorkflowExecutionCompleted, "restart", now.Add(-time.Minute))}}},
		{name: "another workflow completed recently",
			in: input{Executions: []v1alpha1.WorkflowExecution{wfe("w", v1alpha1.WorkflowExecutionCompleted, "scale", now.Add(-time.Minute))}}},
		{name: "remediated long ago",
			in: input{Executions: []v1alpha1.WorkflowExecution{wfe("w", v1alpha1.WorkflowExecutionCompleted, "restart", now.Add(-time.Hour))}}},
	})
}

func TestExponentialBackoff(t *testing.T) {
	failed := v1alpha1.RemediationFailed
	testCheck(t, exponentialBackoff, []checkCase{
		{name: "backoff from the request's own next allowed time", want: v1alpha1.BlockExponentialBackoff, until: now.Add(time.Minute),
			in: input{RR: func() *v1alpha1.RemediationRequest {
				r := self()
				r.Status.NextAllowedExecution = &metav1.Time{Time: now.Add(time.Minute)}
				return r
			}()}},
		{name: "backoff from the signal's last failure", want: v1alpha1.BlockExponentialBackoff,
			in: input{Peers: []v1alpha1.RemediationRequest{rr("a", now.Add(-time.Hour), failed, now.Add(-10*time.Second))}}},
		{name: "backoff passed",
			in: input{Peers: []v1alpha1.RemediationRequest{rr("a", now.Add(-time.Hour), failed, now.Add(-time.Hour))}}},
	})
}

func TestDecideRunsChecksInOrder(t *testing.T) {
	// Busy and recently remediated at once: ResourceBusy (3rd) wins over RecentlyRemediated (4th).
	in := &input{RR: self(), Key: key, Now: now, Executions: []v1alpha1.WorkflowExecution{
		wfe("done", v1alpha1.WorkflowExecutionCompleted, "restart", now.Add(-time.Minute)),
		wfe("busy", v1alpha1.WorkflowExecutionRunning, "restart", time.Time{}),
	}}
	if b := decide(in, opts); b == nil || b.Reason != v1alpha1.BlockResourceBusy || b.BlockingWorkflowExecution != "ns/busy" {
		t.Errorf("decide = %+v", b)
	}
	if b := decide(&input{RR: self(), Key: key, Now: now}, opts); b != nil {
		t.Errorf("nothing applies, got %+v", b)
	}
}

func TestBackoff(t *testing.T) {
	o := Options{BackoffJitter: 0.1}.Defaults()
	for n, want := range map[int]time.Duration{0: 0, 1: time.Minute, 2: 2 * time.Minute, 4: 8 * time.Minute, 5: 10 * time.Minute, 100: 10 * time.Minute} {
		got := Backoff(n, "uid", o)
		if got < time.Duration(float64(want)*0.9) || got > time.Duration(float64(want)*1.1) {
			t.Errorf("Backoff(%d) = %v, want %v +-10%%", n, got, want)
		}
		if got != Backoff(n, "uid", o) {
			t.Errorf("Backoff(%d) is not stable per request", n)
		}
	}
	if Backoff(3, "a", o) == Backoff(3, "b", o) {
		t.Error("jitter does not spread requests")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.Defaults()
	if o.ConsecutiveFailureThreshold != 3 || o.ConsecutiveFailureCooldown != time.Hour || o.RecentlyRemediatedCooldown != 5*time.Minute ||
		o.BackoffBase != time.Minute || o.BackoffMax != 10*time.Minute || o.BackoffJitter != 0.1 {
		t.Errorf("defaults = %+v", o)
	}
}

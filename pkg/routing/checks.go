package routing

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/tenancy"
)

// consecutiveFailures blocks after too many failed requests in a row for
// the same signal and target, until the cooldown after the last failure.
func consecutiveFailures(in *input, o Options) *Block {
	n, last := failureStreak(in.Peers)
	if n < o.ConsecutiveFailureThreshold {
		return nil
	}
	until := last.Add(o.ConsecutiveFailureCooldown)
	if !in.Now.Before(until) {
		return nil
	}
	return &Block{
		Reason:  v1alpha1.BlockConsecutiveFailures,
		Until:   until,
		Message: fmt.Sprintf("%d consecutive failures for signal %q on %s; cooling down until %s", n, in.RR.Spec.SignalFingerprint, in.Key, until.UTC().Format(time.RFC3339)),
	}
}

// duplicateInProgress blocks all but one of the active requests for the
// same signal and target: the one executing, else the oldest. A duplicate whose original completed is
// skipped: the remediation it asks for has been done.
func duplicateInProgress(in *input, _ Options) *Block {
	if orig := in.RR.Status.DuplicateOf; orig != "" {
		for _, p := range in.Peers {
			if isOriginal(&p, in.RR, orig) && p.Status.Phase == v1alpha1.RemediationCompleted {
				return &Block{Reason: v1alpha1.BlockDuplicateInProgress, DuplicateOf: orig, Skip: true,
					Message: fmt.Sprintf("duplicate of %s, which completed the remediation of %s", describeRequest(orig), in.Key)}
			}
		}
	}
	// One already executing wins whatever its age (creation times have
	// one-second resolution, so "older" can tie); otherwise the oldest does.
	var oldest *v1alpha1.RemediationRequest
	for i := range in.Peers {
		p := &in.Peers[i]
		if p.Status.Phase.Terminal() || !mayPrecede(p, in.RR) {
			continue
		}
		if oldest == nil || p.Status.Phase == v1alpha1.RemediationExecuting || (oldest.Status.Phase != v1alpha1.RemediationExecuting && older(p, oldest)) {
			oldest = p
		}
	}
	if oldest == nil {
		return nil
	}
	orig := shown(nameOf(oldest), in.RR)
	return &Block{Reason: v1alpha1.BlockDuplicateInProgress, DuplicateOf: orig,
		Message: fmt.Sprintf("duplicate of %s, still in progress for signal %q on %s", describeRequest(orig), in.RR.Spec.SignalFingerprint, in.Key)}
}

// resourceBusy blocks while any WFE other than the request's own is active
// on the target.
func resourceBusy(in *input, _ Options) *Block {
	for _, w := range in.Executions {
		if w.Status.Phase.Terminal() || ownedBy(&w, in.RR) {
			continue
		}
		name := shown(w.Namespace+"/"+w.Name, in.RR)
		return &Block{Reason: v1alpha1.BlockResourceBusy, BlockingWorkflowExecution: name,
			Message: fmt.Sprintf("%s is busy: %s is %s", in.Key, tenancy.Describe(kindWFE, name), w.Status.Phase.OrPending())}
	}
	return nil
}

// recentlyRemediated blocks the same workflow on a target it completed on
// within the cooldown.
func recentlyRemediated(in *input, o Options) *Block {
	var last time.Time
	var which string
	for _, w := range in.Executions {
		if w.Status.Phase != v1alpha1.WorkflowExecutionCompleted || w.Spec.WorkflowRef.WorkflowID != in.RR.Spec.WorkflowRef.WorkflowID {
			continue
		}
		if t := doneAt(w.Status.CompletionTime, w.CreationTimestamp); t.After(last) {
			last, which = t, tenancy.Describe(kindWFE, shown(w.Namespace+"/"+w.Name, in.RR))
		}
	}
	if which == "" {
		return nil
	}
	until := last.Add(o.RecentlyRemediatedCooldown)
	if !in.Now.Before(until) {
		return nil
	}
	return &Block{Reason: v1alpha1.BlockRecentlyRemediated, Until: until,
		Message: fmt.Sprintf("workflow %q completed on %s at %s (%s); next allowed at %s", in.RR.Spec.WorkflowRef.WorkflowID, in.Key,
			last.UTC().Format(time.RFC3339), which, until.UTC().Format(time.RFC3339))}
}

// exponentialBackoff blocks until the request's next allowed execution,
// which after n failures of its signal on the target is the last failure
// plus Backoff(n).
func exponentialBackoff(in *input, o Options) *Block {
	var until time.Time
	if t := in.RR.Status.NextAllowedExecution; t != nil {
		until = t.Time
	}
	if n, last := failureStreak(in.Peers); n > 0 {
		if t := last.Add(Backoff(n, in.RR.UID, o)); t.After(until) {
			until = t
		}
	}
	if !in.Now.Before(until) {
		return nil
	}
	return &Block{Reason: v1alpha1.BlockExponentialBackoff, Until: until,
		Message: fmt.Sprintf("backing off after failures on %s; next allowed at %s", in.Key, until.UTC().Format(time.RFC3339))}
}

// Backoff is the wait after n consecutive failures: base*2^(n-1), capped,
// with a jitter of up to +-Jitter that is fixed per request (seeded by its
// UID), so retries of one request are stable and requests spread out.
func Backoff(n int, uid types.UID, o Options) time.Duration {
	if n <= 0 {
		return 0
	}
	// In floating point: base*2^(n-1) overflows a Duration for n around 30.
	d := time.Duration(math.Min(float64(o.BackoffBase)*math.Pow(2, float64(n-1)), float64(o.BackoffMax)))
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	spread := float64(h.Sum64()%2001)/1000 - 1 // in [-1, 1]
	return time.Duration(float64(d) * (1 + o.BackoffJitter*spread))
}

// Ran reports whether rr ended after running a WorkflowExecution: only
// such a request is history (a failure in a streak, a completion). One
// that ended before it ran says nothing of its target, which it may not
// even have been allowed to name: refused (InvalidTarget,
// TargetNotPermitted), its WorkflowExecution refused, or skipped. Only the
// orchestrator writes status.workflowExecutionRef (RBAC on /status).
func Ran(rr *v1alpha1.RemediationRequest) bool {
	return (rr.Status.Phase == v1alpha1.RemediationFailed || rr.Status.Phase == v1alpha1.RemediationCompleted) &&
		rr.Status.WorkflowExecutionRef != nil
}

// failureStreak counts the newest peers that ran and failed, up to the
// newest that completed, and returns when the newest failure ended. The
// oldest failure counted adds the streak it recorded when it failed
// (status.consecutiveFailureCount), so the streak outlives the deletion of
// older requests (a retention TTL).
func failureStreak(peers []v1alpha1.RemediationRequest) (n int, last time.Time) {
	var done []*v1alpha1.RemediationRequest
	for i := range peers {
		if p := &peers[i]; Ran(p) {
			done = append(done, p)
		}
	}
	slices.SortFunc(done, func(a, b *v1alpha1.RemediationRequest) int {
		return doneAt(b.Status.CompletionTime, b.CreationTimestamp).Compare(doneAt(a.Status.CompletionTime, a.CreationTimestamp))
	})
	var oldest *v1alpha1.RemediationRequest
	for _, p := range done {
		if p.Status.Phase != v1alpha1.RemediationFailed {
			break
		}
		if n == 0 {
			last = doneAt(p.Status.CompletionTime, p.CreationTimestamp)
		}
		n++
		oldest = p
	}
	if oldest != nil {
		n += max(int(oldest.Status.ConsecutiveFailureCount), 1) - 1
	}
	return n, last
}

// older orders requests by creation, then name: the first one wins.
func older(a, b *v1alpha1.RemediationRequest) bool {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c < 0
	}
	return cmp.Less(a.Name, b.Name)
}

// mayPrecede reports whether peer p, active, could hold rr back as the
// request it duplicates: one executing, or one older.
func mayPrecede(p, rr *v1alpha1.RemediationRequest) bool {
	return p.Status.Phase == v1alpha1.RemediationExecuting || older(p, rr)
}

// nameOf is "namespace/name": peers come from every namespace.
func nameOf(rr *v1alpha1.RemediationRequest) string { return rr.Namespace + "/" + rr.Name }

// kindWFE is a holding WFE's kind, as messages name it.
const kindWFE = "WorkflowExecution"

// describeRequest names an original request, as shown, in a message.
func describeRequest(shown string) string {
	if shown == tenancy.Hidden {
		return tenancy.Describe("RemediationRequest", shown)
	}
	return shown
}

// shown is a holder ("namespace/name") as rr's status and Events may show
// it: hidden unless in rr's own namespace, as the webhook hides it.
func shown(holder string, rr *v1alpha1.RemediationRequest) string {
	return tenancy.HideForeign(holder, rr.Namespace)
}

// isOriginal reports whether peer p is the original that rr's status
// names as orig. One in rr's namespace is known by name; one hidden in
// another namespace is known only as that: any such peer that ended after
// rr was made counts, since it remediated the same signal and target
// after rr asked.
func isOriginal(p, rr *v1alpha1.RemediationRequest, orig string) bool {
	if orig != tenancy.Hidden {
		return nameOf(p) == orig
	}
	return p.Namespace != rr.Namespace && !doneAt(p.Status.CompletionTime, p.CreationTimestamp).Before(rr.CreationTimestamp.Time)
}

func ownedBy(w *v1alpha1.WorkflowExecution, rr *v1alpha1.RemediationRequest) bool {
	for _, ref := range w.OwnerReferences {
		if ref.UID == rr.UID {
			return true
		}
	}
	return false
}

func doneAt(t *metav1.Time, created metav1.Time) time.Time {
	if t != nil {
		return t.Time
	}
	return created.Time
}

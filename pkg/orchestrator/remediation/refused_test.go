package remediation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

var wfes = schema.GroupResource{Group: v1alpha1.GroupVersion.Group, Resource: "workflowexecutions"}

// denial is our webhook's refusal for reason, as the API server relays it.
func denial(reason string, code int32) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonForbidden,
		Message: fmt.Sprintf(`admission webhook "workflowexecutions.targetlock.io" denied the request: %s`, reason),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: admission.CauseType, Message: reason}}},
	}}
}

// unanswered is the API server's error for a webhook that did not answer.
var unanswered = apierrors.NewInternalError(errors.New(`failed calling webhook "workflowexecutions.targetlock.io": failed to call webhook: Post "https://webhook:443/validate": EOF`))

// refusedCase is one CREATE refusal of the request "rr"'s WFE.
type refusedCase struct {
	name   string
	err    error
	objs   []client.Object
	faults interceptor.Funcs
	want   reconcile.Result
	// wantErr, if set, is in the error returned; conflict says whether that
	// error may read as a conflict on the request.
	wantErr string
	outcome outcome
	lease   func(*testing.T, lease.State)
}

func TestRefused(t *testing.T) {
	pending := outcome{phase: v1alpha1.RemediationPending}
	busy := outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy}
	refusedOutcome := outcome{phase: v1alpha1.RemediationFailed, reason: "WorkflowExecutionRefused"}
	ours := claimedFor(ownHolder, "uid-wfe-rr", ourToken)
	released, kept := leaseHeldBy("", lease.Free), leaseHeldBy(ownHolder, lease.Claimed)
	cases := []refusedCase{
		{name: "webhook: target busy: Blocked ResourceBusy, woken by event", err: denial(admission.ReasonResourceBusy, http.StatusConflict),
			want: reconcile.Result{RequeueAfter: fallback}, outcome: busy},
		{name: "webhook: a claim pending: Blocked ResourceBusy", err: denial(admission.ReasonClaimPending, http.StatusConflict),
			want: reconcile.Result{RequeueAfter: fallback}, outcome: busy},
		{name: "webhook: an orchestrator's lock held: Blocked ResourceBusy", err: denial(admission.ReasonLockHeld, http.StatusConflict),
			want: reconcile.Result{RequeueAfter: fallback}, outcome: busy},
		{name: "webhook: invalid target: Failed InvalidTarget", err: denial(admission.ReasonInvalidTarget, http.StatusForbidden),
			outcome: outcome{phase: v1alpha1.RemediationFailed, reason: "InvalidTarget"}},
		{name: "webhook: our lock lost: retried with backoff, not read as a conflict", err: denial(admission.ReasonLockLost, http.StatusConflict),
			wantErr: "refused by the admission webhook (LockLost)", outcome: pending},
		{name: "webhook unanswered after claiming for us: the claim released, then retried", err: unanswered, objs: []client.Object{ours},
			wantErr: "failed calling webhook", outcome: pending, lease: released},
		{name: "webhook unanswered, the WFE stored after all: the claim kept", err: unanswered,
			objs:    []client.Object{ours, execution("wfe-rr", nil, v1alpha1.WorkflowExecutionPending)},
			wantErr: "failed calling webhook", outcome: pending, lease: kept},
		{name: "webhook unanswered, another WFE's claim: left alone", err: unanswered, objs: []client.Object{claimedBy(ns+"/wfe-other", "uid-wfe-other")},
			wantErr: "failed calling webhook", outcome: pending, lease: leaseHeldBy(ns+"/wfe-other", lease.Claimed)},
		{name: "webhook unanswered, our WFE's name claimed for another replica's CREATE: left alone", err: unanswered,
			objs:    []client.Object{claimedFor(ownHolder, "uid-theirs", "other_1")},
			wantErr: "failed calling webhook", outcome: pending, lease: kept},
		{name: "webhook unanswered, the Lease unreadable: that error", err: unanswered, objs: []client.Object{ours},
			faults: failing("get", &coordinationv1.Lease{}), wantErr: "boom", outcome: pending},
		{name: "a timeout (the CREATE may be stored): retried, the claim kept", err: apierrors.NewServerTimeout(wfes, "create", 1),
			objs: []client.Object{ours}, wantErr: "creating workflow execution", outcome: pending, lease: kept},
		{name: "forbidden (RBAC, quota): Failed, our claim released", err: apierrors.NewForbidden(wfes, "wfe-rr", errors.New("exceeded quota")),
			objs: []client.Object{ours}, outcome: refusedOutcome, lease: released},
		{name: "invalid: Failed", err: apierrors.NewInvalid(schema.GroupKind{Group: wfes.Group, Kind: "WorkflowExecution"}, "wfe-rr", field.ErrorList{field.Required(field.NewPath("spec"), "")}),
			outcome: refusedOutcome},
		{name: "bad request: Failed", err: apierrors.NewBadRequest("no"), outcome: refusedOutcome},
		{name: "forbidden, the claim cannot be released: the error, not Failed yet", err: apierrors.NewForbidden(wfes, "wfe-rr", errors.New("policy")),
			objs: []client.Object{ours}, faults: failing("get", &coordinationv1.Lease{}), wantErr: "boom", outcome: pending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

// refusedAfterFreshResolution: a refusal of our webhook that says the
// two disagree on the target (their discovery, say) is retried once on a
// fresh resolution, then ends the request with the webhook's reason.
func refusedAfterFreshResolution(t *testing.T) {
	for _, reason := range []string{admission.ReasonInvalidLabel, admission.ReasonInvalidObject,
		admission.ReasonNotPermitted, admission.ReasonTokenNotAccepted} {
		t.Run(reason, func(t *testing.T) {
			f := newFixture(t, interceptor.Funcs{})
			stale := &staleDiscovery{}
			f.r.resolver = target.NewResolver(stale, nil)
			f.client.Create(context.Background(), request("rr", "sig", v1alpha1.RemediationPending)) //nolint:errcheck // checked by get
			first := f.get("rr")
			_, _ = f.r.resolver.ForRemediation(first) // discovery read once
			reads := stale.reads.Load()
			_, err := f.r.refused(context.Background(), first, appKey, ourLock, denial(reason, http.StatusForbidden))
			if err == nil || !strings.Contains(err.Error(), "refused by the admission webhook ("+reason+")") {
				t.Fatalf("first refusal: error %v, want a retry", err)
			}
			f.check(outcome{phase: v1alpha1.RemediationPending})
			if _, _ = f.r.resolver.ForRemediation(first); stale.reads.Load() == reads {
				t.Errorf("first refusal: the resolver was not invalidated")
			}
			// Another replica may take the retry: what is remembered is on the request.
			f.r.resolver = targettest.Resolver()
			if _, err := f.r.refused(context.Background(), f.get("rr"), appKey, ourLock, denial(reason, http.StatusForbidden)); err != nil {
				t.Fatalf("second refusal: error %v, want none", err)
			}
			f.check(outcome{phase: v1alpha1.RemediationFailed, reason: reason})
			if c := meta.FindStatusCondition(f.get("rr").Status.Conditions, ConditionSucceeded); c == nil || !strings.Contains(c.Message, "denied the request") {
				t.Errorf("Succeeded condition %+v, want the webhook's message", c)
			}
		})
	}
}

// TestRefusedOtherReasonBetween: a retry that meets another refusal (a
// busy target) starts the count again.
func TestRefusedOtherReasonBetween(t *testing.T) {
	f := newFixture(t, interceptor.Funcs{}, request("rr", "sig", v1alpha1.RemediationPending))
	ctx := context.Background()
	if _, err := f.r.refused(ctx, f.get("rr"), appKey, ourLock, denial(admission.ReasonInvalidLabel, http.StatusForbidden)); err == nil {
		t.Fatal("first refusal: no error, want a retry")
	}
	if _, err := f.r.refused(ctx, f.get("rr"), appKey, ourLock, denial(admission.ReasonResourceBusy, http.StatusConflict)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.refused(ctx, f.get("rr"), appKey, ourLock, denial(admission.ReasonInvalidLabel, http.StatusForbidden)); err == nil {
		t.Fatal("refusal after a block: no error, want a retry")
	}
	f.check(outcome{phase: v1alpha1.RemediationBlocked, block: v1alpha1.BlockResourceBusy})
}

// staleDiscovery serves targettest's kinds and counts its reads.
type staleDiscovery struct{ reads atomic.Int32 }

func (d *staleDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	d.reads.Add(1)
	return targettest.Resources, nil
}

func (tc refusedCase) run(t *testing.T) {
	f := newFixture(t, tc.faults, append([]client.Object{request("rr", "sig", v1alpha1.RemediationPending)}, tc.objs...)...)
	got, err := f.r.refused(context.Background(), f.get("rr"), appKey, ourLock, tc.err)
	switch {
	case tc.wantErr == "" && err != nil:
		t.Fatalf("error %v, want none", err)
	case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
		t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
	case apierrors.IsConflict(err):
		t.Errorf("error %v reads as a conflict on the request: Reconcile would requeue it at once", err)
	}
	if got != tc.want {
		t.Errorf("result %+v, want %+v", got, tc.want)
	}
	// The lease reads go through the faults too: judge it only when they pass.
	f.check(tc.outcome)
	if tc.lease != nil {
		tc.lease(t, f.lease())
	}
}

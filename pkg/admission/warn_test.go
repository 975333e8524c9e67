package admission_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/warnings"
)

// warnClient is a client of f's API server whose warnings are collected,
// as user (impersonated, a cluster admin by RBAC but not the orchestrator)
// or, with user "", as the tests' admin, whom the webhook trusts as the
// orchestrator.
func warnClient(t *testing.T, f *fixture, user string) (client.Client, *warnings.Collector) {
	t.Helper()
	cfg := rest.CopyConfig(f.env.Config)
	w := &warnings.Collector{}
	cfg.WarningHandlerWithContext = w
	if user != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters", "system:authenticated"}}
	}
	c, err := client.New(cfg, client.Options{Scheme: f.env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

func inWarnNamespace(t *testing.T) (*fixture, string) {
	t.Helper()
	f := warnShared.Get(t)
	return f, newNamespaceIn(t, f)
}

// leaseOf reads tgt's Lease object itself, to show nobody wrote it.
func leaseOf(t *testing.T, f *fixture, tgt string) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := f.env.Client.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: mustKey(t, tgt).LeaseName()}, l); err != nil {
		t.Fatalf("reading the Lease of %s: %v", tgt, err)
	}
	return l
}

// wantWarned fails t unless warns is the one warning of a reason refusal.
func wantWarned(t *testing.T, warns []string, reason string, mentions ...string) {
	t.Helper()
	if len(warns) != 1 || !strings.HasPrefix(warns[0], admission.WarningPrefix+reason+": ") {
		t.Fatalf("warnings %q, want one starting %q", warns, admission.WarningPrefix+reason+": ")
	}
	for _, m := range mentions {
		if !strings.Contains(warns[0], m) {
			t.Errorf("warning %q does not mention %q", warns[0], m)
		}
	}
}

// TestWarnModeAdmitsBusyTargetWithWarning: in warn mode a second and a
// third CREATE for a busy target are admitted through the API server, each
// with a warning the client sees, recorded as would-refuse (Event, metric),
// and neither touches the first holder's Lease; the first CREATE, on a free
// target, claims it as in enforce mode.
func TestWarnModeAdmitsBusyTargetWithWarning(t *testing.T) {
	f, ns := inWarnNamespace(t)
	ctx := context.Background()
	c, warns := warnClient(t, f, "")
	tgt := ns + "/StatefulSet/db"

	first := newWFE(ns, "first", tgt, withRR("rr-first"))
	if err := c.Create(ctx, first); err != nil {
		t.Fatalf("first CREATE: %v", err)
	}
	if w := warns.Take(); len(w) != 0 {
		t.Errorf("the first CREATE, on a free target, was warned: %q", w)
	}
	wantHolder(t, f, tgt, ns+"/first")
	before := leaseOf(t, f, tgt)
	busy := counterValue(t, admission.DecisionWarned, admission.ReasonResourceBusy)

	for _, name := range []string{"second", "third"} {
		if err := c.Create(ctx, newWFE(ns, name, tgt, withRR("rr-"+name))); err != nil {
			t.Fatalf("%s CREATE in warn mode: %v", name, err)
		}
		wantWarned(t, warns.Take(), admission.ReasonResourceBusy, ns+"/StatefulSet.apps/db", ns+"/first")
	}
	if after := leaseOf(t, f, tgt); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the first holder's Lease was written: resourceVersion %s -> %s, %v", before.ResourceVersion, after.ResourceVersion, after.Annotations)
	}
	st := inspect(t, f, tgt)
	if st.Holder != ns+"/first" || !st.ClaimedBy(first.UID) {
		t.Errorf("Lease %s, want claimed by %s/first (%s)", st, ns, first.UID)
	}
	if got := counterValue(t, admission.DecisionWarned, admission.ReasonResourceBusy); got != busy+2 {
		t.Errorf("warned ResourceBusy counter = %v, want %v", got, busy+2)
	}
	for _, rr := range []string{"rr-second", "rr-third"} {
		testenv.Eventually(t, 20*time.Second, func() error {
			if n := len(wouldRefuseEvents(ctx, f, ns, rr)); n != 1 {
				return fmt.Errorf("%d WouldRefuse Events on RemediationRequest %s, want 1", n, rr)
			}
			return nil
		})
	}
	e := wouldRefuseEvents(ctx, f, ns, "rr-second")[0]
	for k, v := range map[string]string{
		admission.AnnotationDecision: admission.DecisionWarned, admission.AnnotationReason: admission.ReasonResourceBusy,
		admission.AnnotationHolder: ns + "/first", admission.AnnotationWorkflowExecution: ns + "/second",
	} {
		if got := e.Annotations[admission.EventAnnotationPrefix+k]; got != v {
			t.Errorf("Event annotation %s = %q, want %q", k, got, v)
		}
	}
}

// wouldRefuseEvents lists the WouldRefuse Events on RemediationRequest rr.
func wouldRefuseEvents(ctx context.Context, f *fixture, ns, rr string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	if err := f.env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil
	}
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == rr && e.Reason == admission.ReasonWouldRefuse && e.Type == "Warning" &&
			e.Action == admission.EventAction && e.ReportingController == admission.ReportingController {
			found = append(found, e)
		}
	}
	return found
}

// TestWarnModeHostileRequester: a requester who is not the orchestrator
// naming an object in another namespace is warned NotPermitted and claims
// nothing; a forged lock token and a malformed target are refused in warn
// mode too; past its claim budget a requester is warned RateLimited.
func TestWarnModeHostileRequester(t *testing.T) {
	f, ns := inWarnNamespace(t)
	other := newNamespaceIn(t, f)
	ctx := context.Background()
	admin, _ := warnClient(t, f, "")
	mallory, warns := warnClient(t, f, "mallory")
	tgt := ns + "/Deployment/shop"
	mustCreate(t, admin, newWFE(ns, "owner", tgt))
	before := leaseOf(t, f, tgt)

	// From another namespace, naming ns's object: not permitted, warned.
	mustCreate(t, mallory, newWFE(other, "cross", tgt))
	wantWarned(t, warns.Take(), admission.ReasonNotPermitted, other)
	// A free object of ns, from another namespace: warned, and unclaimed
	// by the webhook (no claim for what would be refused).
	free := ns + "/Deployment/free"
	mustCreate(t, mallory, newWFE(other, "cross-free", free))
	wantWarned(t, warns.Take(), admission.ReasonNotPermitted)
	if after := leaseOf(t, f, tgt); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the holder's Lease was written by a warned CREATE")
	}

	// A forged lock token: refused whatever the mode.
	if err := mallory.Create(ctx, newWFE(ns, "forged", ns+"/Deployment/t1", withToken("forged"))); err == nil || !strings.Contains(err.Error(), admission.ReasonTokenNotAccepted) {
		t.Errorf("a forged lock token in warn mode: %v, want refused %s", err, admission.ReasonTokenNotAccepted)
	}
	// A target that cannot be keyed: refused whatever the mode.
	if err := mallory.Create(ctx, newWFE(ns, "bad", "no-such-form")); err == nil || !strings.Contains(err.Error(), admission.ReasonInvalidTarget) {
		t.Errorf("a malformed target in warn mode: %v, want refused %s", err, admission.ReasonInvalidTarget)
	}
	// certs verify's dry-run probe (an unknown kind) is refused in warn
	// mode too: its refusal proves the API server called the webhook.
	probe := newWFE(ns, "probe", "certs-verify/Not-A-Kind/probe")
	if err := mallory.Create(ctx, probe, client.DryRunAll); err == nil || !strings.Contains(err.Error(), admission.ReasonInvalidTarget) {
		t.Errorf("certs verify's probe in warn mode: %v, want refused %s", err, admission.ReasonInvalidTarget)
	}
	if w := warns.Take(); len(w) != 0 {
		t.Errorf("refusals carried warnings: %q", w)
	}

	// Past its burst, a requester's direct claims are warned RateLimited.
	flooder, fw := warnClient(t, f, "flooder")
	for i := range warnClaimsBurst {
		mustCreate(t, flooder, newWFE(ns, "flood-"+string(rune('a'+i)), ns+"/Deployment/flood-"+string(rune('a'+i))))
	}
	if w := fw.Take(); len(w) != 0 {
		t.Errorf("claims within the burst were warned: %q", w)
	}
	mustCreate(t, flooder, newWFE(ns, "flood-over", ns+"/Deployment/flood-over"))
	wantWarned(t, fw.Take(), admission.ReasonRateLimited, "flooder")
}

func mustCreate(t *testing.T, c client.Client, w *v1alpha1.WorkflowExecution) {
	t.Helper()
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatalf("creating %s/%s for %s: %v", w.Namespace, w.Name, w.Spec.TargetResource, err)
	}
}

// TestEnforceModeCarriesNoWarning: the enforce-mode webhook still refuses
// the second CREATE, with no warning.
func TestEnforceModeCarriesNoWarning(t *testing.T) {
	f, ns := inNewNamespace(t)
	c, warns := warnClient(t, f, "")
	tgt := ns + "/StatefulSet/db"
	mustCreate(t, c, newWFE(ns, "first", tgt))
	err := c.Create(context.Background(), newWFE(ns, "second", tgt))
	if err == nil || !strings.Contains(err.Error(), admission.ReasonResourceBusy) {
		t.Fatalf("enforce mode: %v, want refused %s", err, admission.ReasonResourceBusy)
	}
	if w := warns.Take(); len(w) != 0 {
		t.Errorf("enforce mode warned: %q", w)
	}
}

// TestWarnedWFEIsClaimedOnceTheFirstEnds: a WFE warn mode admitted over a
// busy target holds no claim while the first runs, and the webhook's
// claims keeper claims its object once the first ends, as it does for a
// WFE stored before the webhook ran: enforcement then finds the Lease as
// it stands.
func TestWarnedWFEIsClaimedOnceTheFirstEnds(t *testing.T) {
	f, ns := inWarnNamespace(t)
	ctx := context.Background()
	c, warns := warnClient(t, f, "")
	tgt := ns + "/Deployment/api"
	first := newWFE(ns, "first", tgt)
	mustCreate(t, c, first)
	second := newWFE(ns, "second", tgt)
	mustCreate(t, c, second)
	wantWarned(t, warns.Take(), admission.ReasonResourceBusy)
	wantHolder(t, f, tgt, ns+"/first")

	patch := client.MergeFrom(first.DeepCopy())
	first.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	if err := c.Status().Patch(ctx, first, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 45*time.Second, func() error {
		if st := inspect(t, f, tgt); !st.ClaimedBy(second.UID) {
			return fmt.Errorf("Lease %s, want claimed by %s/second", st, ns)
		}
		return nil
	})
}

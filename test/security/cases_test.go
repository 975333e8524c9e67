package security_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/plugin"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

var tenancyCases = []securityCase{
	{"a tenant cannot claim another namespace's object", func(t *testing.T) {
		err := as("alice").Create(context.Background(), newWFE(tenantA, "grab", tenantB+"/Deployment/web"))
		if refusal(err) != admission.ReasonNotPermitted || !isForbidden(err) {
			t.Fatalf("got %v, want 403 NotPermitted", err)
		}
		for _, want := range []string{"may name only objects in namespace " + tenantA, "in namespace " + tenantB, "ask an admin to trust", "be allowed to " + authorVerb} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal does not say %q: %v", want, err)
			}
		}
		if leaseOf(t, target.Key{Group: "apps", Kind: "Deployment", Namespace: tenantB, Name: "web"}) {
			t.Error("the refused CREATE wrote the object's Lease")
		}
	}},

	{"a tenant cannot claim a cluster-scoped object", func(t *testing.T) {
		for _, tgt := range []string{"Node/worker-1", tenantA + "/Node/worker-1", "nodes/worker-1"} {
			err := as("alice").Create(context.Background(), newWFE(tenantA, "node", tgt))
			if refusal(err) != admission.ReasonNotPermitted || !strings.Contains(err.Error(), "cluster-scoped") {
				t.Errorf("%s: %v, want NotPermitted naming it cluster-scoped", tgt, err)
			}
		}
	}},

	{"a trusted namespace may name any object", func(t *testing.T) {
		mustCreate(t, as("opsuser"), newWFE(opsNS, "ops-web", tenantB+"/Deployment/ops-web"))
		mustCreate(t, as("opsuser"), newWFE(opsNS, "ops-node", "Node/ops-node"))
	}},

	{"a trusted ServiceAccount may name any object", func(t *testing.T) {
		mustCreate(t, as(trustedSA, "system:serviceaccounts", "system:serviceaccounts:"+ciNS), newWFE(ciNS, "ci-node", "Node/ci-node"))
	}},

	{"anyone may name an object they may patch, and only that", func(t *testing.T) {
		mustCreate(t, as("carol"), newWFE(tenantC, "carol-web", tenantB+"/deployments/carol-web"))
		err := as("carol").Create(context.Background(), newWFE(tenantC, "carol-db", tenantB+"/StatefulSet/carol-db"))
		if refusal(err) != admission.ReasonNotPermitted {
			t.Errorf("a StatefulSet carol may not patch: %v, want NotPermitted", err)
		}
	}},

	{"a lock token read from a denial cannot be replayed, and is never shown", func(t *testing.T) {
		key := target.Key{Group: "apps", Kind: "Deployment", Namespace: tenantA, Name: "locked"}
		orch, err := lease.New(as(orchUser), lease.Options{Namespace: installNS, Identity: "orchestrator-7d9f-abc"})
		if err != nil {
			t.Fatal(err)
		}
		tok, ok, err := orch.Acquire(context.Background(), key)
		if err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		nonce := tok.ID[strings.LastIndexByte(tok.ID, '_')+1:]
		plain := as("alice").Create(context.Background(), newWFE(tenantA, "plain", tenantA+"/Deployment/locked"))
		if refusal(plain) != admission.ReasonLockHeld || strings.Contains(plain.Error(), nonce) || !strings.Contains(plain.Error(), "holder orchestrator-7d9f-abc)") {
			t.Fatalf("plain CREATE on a locked object: %v; want LockHeld naming the pod, not the token", plain)
		}
		replay := newWFE(tenantA, "replay", tenantA+"/Deployment/locked")
		replay.Annotations = map[string]string{v1alpha1.LockTokenAnnotation: tok.ID}
		if err := as("alice").Create(context.Background(), replay); refusal(err) != admission.ReasonTokenNotAccepted || strings.Contains(err.Error(), nonce) {
			t.Fatalf("replayed token: %v; want TokenNotAccepted", err)
		}
		own := newWFE(tenantA, "own", tenantA+"/Deployment/locked")
		own.Annotations = map[string]string{v1alpha1.LockTokenAnnotation: tok.ID}
		mustCreate(t, as(orchUser, saGroups(installNS)...), own) // the orchestrator's own CREATE still passes
		// No Event anywhere carries the token, in its note or annotations.
		testenv.Eventually(t, 10*time.Second, func() error {
			evs := &eventsv1.EventList{}
			if err := env.Client.List(context.Background(), evs); err != nil {
				return err
			}
			seen := 0
			for _, e := range evs.Items {
				if e.ReportingController != admission.ReportingController || e.Namespace != tenantA {
					continue
				}
				seen++
				if strings.Contains(fmt.Sprint(e.Note, e.Annotations), nonce) {
					t.Fatalf("Event %s carries the token: %s %v", e.Name, e.Note, e.Annotations)
				}
			}
			if seen < 2 {
				return fmt.Errorf("%d denial Events in %s so far", seen, tenantA)
			}
			return nil
		})
		// Nor can a tenant read the Lease that holds it.
		if err := as("alice").Get(context.Background(), client.ObjectKey{Namespace: installNS, Name: key.LeaseName()}, &coordinationv1.Lease{}); !isForbidden(err) {
			t.Errorf("alice reading the Lease: %v, want forbidden", err)
		}
	}},

	{"denial Events stay in the requester's namespace", func(t *testing.T) {
		mustCreate(t, as("alice"), newWFE(tenantA, "owner-ev", tenantA+"/Deployment/ev"))
		aimed := newWFE(tenantA, "aimed", tenantA+"/Deployment/ev")
		aimed.Spec.RemediationRequestRef = &v1alpha1.ObjectRef{Namespace: "kube-system", Name: "victim"}
		if err := as("alice").Create(context.Background(), aimed); refusal(err) != admission.ReasonResourceBusy {
			t.Fatalf("got %v, want ResourceBusy", err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			evs := &eventsv1.EventList{}
			if err := env.Client.List(context.Background(), evs); err != nil {
				return err
			}
			found := false
			for _, e := range evs.Items {
				if e.ReportingController != admission.ReportingController {
					continue
				}
				if e.Namespace == "kube-system" || e.Regarding.Namespace == "kube-system" {
					t.Fatalf("a denial Event in kube-system: %+v", e)
				}
				if e.Namespace == tenantA && e.Regarding.Name == "aimed" {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no Event on the WFE in %s yet", tenantA)
			}
			return nil
		})
		long := newWFE(tenantA, "long-ref", tenantA+"/Deployment/ev-2")
		long.Spec.RemediationRequestRef = &v1alpha1.ObjectRef{Name: strings.Repeat("x", 300)}
		if err := as("alice").Create(context.Background(), long); err == nil {
			t.Error("a 300-character RemediationRequest name was accepted")
		}
	}},

	{"a holder in another namespace is not shown", func(t *testing.T) {
		mustCreate(t, as("opsuser"), newWFE(opsNS, "secret-remediation", tenantB+"/Deployment/hidden"))
		err := as("bob").Create(context.Background(), newWFE(tenantB, "mine", tenantB+"/Deployment/hidden"))
		if refusal(err) != admission.ReasonResourceBusy {
			t.Fatalf("got %v, want ResourceBusy", err)
		}
		if strings.Contains(err.Error(), "secret-remediation") || strings.Contains(err.Error(), opsNS+"/") || !strings.Contains(err.Error(), "another namespace") {
			t.Errorf("the refusal shows or fails to hide the holder: %v", err)
		}
	}},

	{"a request may name only its own namespace's objects unless its namespace is trusted", func(t *testing.T) {
		rr := func(ns, name, kind, tns, tname string) *v1alpha1.RemediationRequest {
			return &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: v1alpha1.RemediationRequestSpec{TargetResource: v1alpha1.ResourceIdentifier{Kind: kind, Namespace: tns, Name: tname},
					SignalFingerprint: "sig", WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}}}
		}
		mustCreate(t, as("alice"), rr(tenantA, "reach", "Deployment", tenantB, "rr-web"))
		mustCreate(t, as("alice"), rr(tenantA, "node", "Node", "", "rr-node"))
		mustCreate(t, as("opsuser"), rr(opsNS, "ops-node", "Node", "", "rr-ops-node"))
		phase := func(ns, name string) (*v1alpha1.RemediationRequest, error) {
			r := &v1alpha1.RemediationRequest{}
			return r, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, r)
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			for _, n := range []string{"reach", "node"} {
				r, err := phase(tenantA, n)
				if err != nil {
					return err
				}
				if r.Status.Phase != v1alpha1.RemediationFailed || !hasReason(r, "TargetNotPermitted") {
					return fmt.Errorf("%s is %s, want Failed TargetNotPermitted", n, r.Status.Phase)
				}
			}
			r, err := phase(opsNS, "ops-node")
			if err != nil {
				return err
			}
			if r.Status.Phase != v1alpha1.RemediationExecuting {
				return fmt.Errorf("ops-node is %q (%s), want Executing", r.Status.Phase, r.Status.BlockMessage)
			}
			return nil
		})
	}},

	{"the denial listing ignores Events the webhook did not report", func(t *testing.T) {
		forged := denialEvent(tenantA, "forged", "alice-tool", "ResourceBusy: forged")
		if err := as("alice").Create(context.Background(), forged); err != nil {
			t.Fatal(err)
		}
		ds, err := plugin.ListDenials(context.Background(), env.Client, plugin.DenialFilter{Namespace: tenantA})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if strings.Contains(d.Message, "forged") {
				t.Errorf("a forged Event was listed: %+v", d)
			}
		}
	}},

	{"control characters in Events never reach the admin's terminal", func(t *testing.T) {
		// Even an Event claiming the webhook's name (forgeable by anyone who
		// may create Events) prints inert.
		e := denialEvent(tenantA, "escape", admission.ReportingController, "ResourceBusy: \x1b[2J\x1b[31mrm -rf\ttab\nnewline\u202eevil")
		e.Annotations = map[string]string{admission.EventAnnotationPrefix + admission.AnnotationHolder: "x\x1b]0;title\x07"}
		if err := as("alice").Create(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ds, err := plugin.ListDenials(context.Background(), env.Client, plugin.DenialFilter{Namespace: tenantA})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := plugin.PrintDenials(&out, ds, plugin.PrintOptions{Output: "wide"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "rm -rf") {
			t.Fatalf("the Event was not listed:\n%s", out.String())
		}
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "tab\t", "\nnewline"} {
			if strings.Contains(out.String(), bad) {
				t.Errorf("the listing carries %q:\n%q", bad, out.String())
			}
		}
	}},
}

func denialEvent(ns, name, controller, note string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: name},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: controller, ReportingInstance: controller + "-0",
		Action: admission.EventAction, Reason: "ResourceBusy", Type: corev1.EventTypeWarning, Note: note,
		Regarding: corev1.ObjectReference{Kind: "WorkflowExecution", Namespace: ns, Name: "w"},
	}
}

func leaseOf(t *testing.T, key target.Key) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: installNS, Name: key.LeaseName()}, &coordinationv1.Lease{})
	return err == nil
}

func hasReason(rr *v1alpha1.RemediationRequest, reason string) bool {
	for _, c := range rr.Status.Conditions {
		if c.Reason == reason {
			return true
		}
	}
	return false
}

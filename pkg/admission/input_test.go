package admission_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/target"
)

// badInputs are requests the handler must refuse with a 4xx and a message
// saying what is wrong, writing nothing. Many never reach the webhook
// through the API server (the CRD schema refuses them first); the handler
// must not rely on that.
func badInputs() []struct {
	name string
	raw  []byte
	want string
} {
	wfe := func(tgt any) []byte {
		b, _ := json.Marshal(map[string]any{
			"apiVersion": "targetlock.io/v1alpha1", "kind": "WorkflowExecution",
			"metadata": map[string]any{"name": "bad", "namespace": "demo", "uid": "uid-bad"},
			"spec":     map[string]any{"targetResource": tgt, "workflowRef": map[string]any{"workflowID": "x"}},
		})
		return b
	}
	long := strings.Repeat("a", 10*1024)
	return []struct {
		name string
		raw  []byte
		want string
	}{
		{"missing target", []byte(`{"metadata":{"name":"bad","namespace":"demo","uid":"u"},"spec":{"workflowRef":{"workflowID":"x"}}}`), target.Form},
		{"empty target", wfe(""), target.Form},
		{"four parts", wfe("a/b/c/d"), "got 4"},
		{"empty namespace", wfe("/Deployment/app"), "empty namespace"},
		{"empty kind", wfe("demo//app"), "empty kind"},
		{"empty name", wfe("demo/Deployment/"), "empty name"},
		{"only slashes", wfe("//"), target.Form},
		{"10 KB name", wfe("demo/Deployment/" + long), "name"},
		{"10 KB kind", wfe("demo/" + long + "/app"), "kind"},
		{"10 KB namespace", wfe(long + "/Deployment/app"), "namespace"},
		{"unicode name", wfe("demo/Deployment/äpp-☃"), "name"},
		{"unicode kind", wfe("demo/Dëployment/app"), "kind"},
		{"NUL byte", wfe("demo/Deployment/a\x00b"), "name"},
		{"target is a number", wfe(42), "targetResource"},
		{"target is an object", wfe(map[string]any{"kind": "Deployment"}), "targetResource"},
		{"spec is a string", []byte(`{"metadata":{"name":"bad","uid":"u"},"spec":"demo/Deployment/app"}`), "spec"},
		{"metadata is a list", []byte(`{"metadata":[],"spec":{"targetResource":"demo/Deployment/app"}}`), "metadata"},
		{"not JSON", []byte(`{"spec":`), "decoding"},
		{"no object", nil, "no object"},
		{"no uid", []byte(`{"metadata":{"name":"bad","namespace":"demo"},"spec":{"targetResource":"demo/Deployment/app"}}`), "uid"},
	}
}

func TestBadInputIsRefused(t *testing.T) {
	h, c := newFakeHandler(t, nil)
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Handle(context.Background(), request(admissionv1.Create, "demo", "bad", tc.raw))
			if resp.Allowed {
				t.Fatalf("allowed")
			}
			if code := resp.Result.Code; code < 400 || code >= 500 {
				t.Errorf("want a 4xx, got %d", code)
			}
			if msg := resp.Result.Message; !strings.Contains(msg, tc.want) || len(msg) > 2048 {
				t.Errorf("want a message (< 2 kB) mentioning %q, got %d bytes: %q", tc.want, len(msg), msg)
			}
			if resp.AuditAnnotations[admission.AnnotationDecision] != admission.DecisionDenied {
				t.Errorf("want audit annotation decision=denied, got %v", resp.AuditAnnotations)
			}
		})
	}
	if n := leaseCount(t, c, leaseNamespace); n != 0 {
		t.Errorf("bad input wrote %d Leases", n)
	}
}

// TestBadInputThroughAPIServer sends the malformed targets the CRD schema
// lets through: the webhook refuses them with a 400 and writes nothing.
func TestBadInputThroughAPIServer(t *testing.T) {
	f, ns := inNewNamespace(t)
	before := leaseCount(t, f.env.Client, leaseNamespace)
	for _, tgt := range []string{"a/b/c/d", ns + "//app", "/Deployment/app", ns + "/Deployment/äpp", "Node/" + strings.Repeat("x", 300), "x/y/"} {
		st := create(t, f, newWFE(ns, "bad", tgt))
		if st == nil {
			t.Errorf("target %q: admitted", tgt)
			continue
		}
		if st.Code < 400 || st.Code >= 500 || !strings.Contains(st.Message, "want") {
			t.Errorf("target %q: want a 4xx showing the expected form, got %d %q", tgt, st.Code, st.Message)
		}
	}
	if after := leaseCount(t, f.env.Client, leaseNamespace); after != before {
		t.Errorf("bad input wrote Leases: %d before, %d after", before, after)
	}
}

// TestIdentityLabelThroughAPIServer: a WFE without the identity label is
// labelled; one carrying the right label (as the orchestrator sends it)
// skips the labelling webhook and is admitted as is; one whose label names
// another object is refused with a 400 and writes nothing.
func TestIdentityLabelThroughAPIServer(t *testing.T) {
	f, ns := inNewNamespace(t)
	plain := newWFE(ns, "plain", ns+"/deployments/a")
	mustAdmit(t, f, plain)
	if got := plain.Labels[v1alpha1.TargetHashLabel]; got != identityHash(ns+"/Deployment.apps/a") {
		t.Errorf("unlabelled WFE stored with label %q", got)
	}
	right := newWFE(ns, "right", ns+"/Deployment/b", withLabel(v1alpha1.TargetHashLabel, identityHash(ns+"/Deployment.apps/b")))
	mustAdmit(t, f, right)
	wantHolder(t, f, ns+"/Deployment/b", ns+"/right")

	before := leaseCount(t, f.env.Client, leaseNamespace)
	for _, forged := range []string{identityHash(ns + "/Deployment.apps/a"), "forged", ""} {
		st := mustDeny(t, f, newWFE(ns, "forged", ns+"/Deployment/c", withLabel(v1alpha1.TargetHashLabel, forged)), admission.ReasonInvalidLabel)
		if st.Code != 400 || !strings.Contains(st.Message, identityHash(ns+"/Deployment.apps/c")) {
			t.Errorf("label %q: want a 400 naming the right value, got %d %q", forged, st.Code, st.Message)
		}
	}
	if after := leaseCount(t, f.env.Client, leaseNamespace); after != before {
		t.Errorf("refused WFEs wrote Leases: %d before, %d after", before, after)
	}
}

// Only CREATEs are guarded: the CRD keeps the target immutable and a
// terminal phase final, so no other operation depends on the webhook.
func TestOtherOperationsAreNotGuarded(t *testing.T) {
	h, _ := newFakeHandler(t, nil)
	w := newWFE("demo", "w", "demo/Deployment/app")
	for _, op := range []admissionv1.Operation{admissionv1.Update, admissionv1.Delete, admissionv1.Connect} {
		if resp := h.Handle(context.Background(), request(op, "demo", "w", w)); !resp.Allowed {
			t.Errorf("%s: want allowed, got %s", op, resp.Result.Message)
		}
	}
}

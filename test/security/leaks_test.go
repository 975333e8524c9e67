package security_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/internal/plugin"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// escapes is what an attacker aims at an admin's terminal: clear the
// screen, retitle the window, ring the bell, reverse the text.
const escapes = "\x1b[2J\x1b]0;pwned\x07\u202e\ttab\nnewline"

// leakCases: what one tenant may learn of, or do to, another through the periphery.
var leakCases = []securityCase{
	{"kubectl targetlock locks prints no control characters", func(t *testing.T) {
		// A Lease as a forged AdmissionReview could have had the webhook
		// write it: the holder (the WFE's name) and target are the
		// attacker's text.
		now := metav1.NewMicroTime(time.Now())
		mustCreate(t, env.Client, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "targetlock-escape",
				Labels:      map[string]string{"app.kubernetes.io/managed-by": "targetlock"},
				Annotations: map[string]string{"targetlock.io/target": tenantA + "/Deployment/web" + escapes, "targetlock.io/claim-uid": "uid" + escapes}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(tenantA + "/wfe" + escapes), RenewTime: &now, AcquireTime: &now, LeaseDurationSeconds: ptr.To[int32](30)},
		})
		ls, err := plugin.ListLocks(context.Background(), env.Client, installNS, "")
		if err != nil {
			t.Fatal(err)
		}
		var table, wide bytes.Buffer
		if err := plugin.PrintLocks(&table, ls, plugin.PrintOptions{}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := plugin.PrintLocks(&wide, ls, plugin.PrintOptions{Output: "wide"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		var data bytes.Buffer // JSON is data: exact, and escaped by encoding
		if err := plugin.PrintLocks(&data, ls, plugin.PrintOptions{Output: "json"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		var back plugin.List[plugin.Lock]
		if err := json.Unmarshal(data.Bytes(), &back); err != nil || !slices.ContainsFunc(back.Items, func(l plugin.Lock) bool { return l.Holder == tenantA+"/wfe"+escapes }) {
			t.Errorf("JSON lost the exact holder (%v):\n%s", err, data.String())
		}
		for format, out := range map[string]string{"table": table.String(), "wide": wide.String()} {
			if !strings.Contains(out, "pwned") {
				t.Fatalf("%s does not list the Lease:\n%s", format, out)
			}
			for _, bad := range []string{"\x1b", "\x07", "\u202e", "tab\t", "\nnewline"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s carries %q:\n%q", format, bad, out)
				}
			}
		}
	}},

	{"a request's status and Events do not show a holder in another namespace", func(t *testing.T) {
		mustCreate(t, as("opsuser"), newWFE(opsNS, "confidential-fix", tenantA+"/Deployment/leak-busy"))
		mustCreate(t, as("alice"), newWFE(tenantA, "own-fix", tenantA+"/Deployment/leak-own"))
		mustCreate(t, as("alice"), newRR(tenantA, "waits-on-ops", tenantA, "leak-busy", "leak-sig"))
		mustCreate(t, as("alice"), newRR(tenantA, "waits-on-own", tenantA, "leak-own", "leak-sig"))
		rr := blockedAndRecorded(t, tenantA, "waits-on-ops", v1alpha1.BlockResourceBusy)
		if rr.Status.BlockingWorkflowExecution == "" {
			t.Error("the status does not say the target is held at all")
		}
		// The request's own namespace's holder stays visible.
		if own := blockedAndRecorded(t, tenantA, "waits-on-own", v1alpha1.BlockResourceBusy); own.Status.BlockingWorkflowExecution != tenantA+"/own-fix" {
			t.Errorf("own namespace's holder: %q, want %s/own-fix", own.Status.BlockingWorkflowExecution, tenantA)
		}
	}},

	{"metrics answer only callers the API server authenticates and authorizes", metricsCase},

	{"a Lease namespace shared with another controller is reported at startup", func(t *testing.T) {
		// Another controller's leader election, where targetlock keeps
		// its Leases: both components could update and delete it.
		mustCreate(t, env.Client, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "other-controller-leader"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other-0")}})
		var logged []string
		log := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
		manager.WarnSharedNamespace(context.Background(), env.Client, installNS, log)
		if len(logged) != 1 || !strings.Contains(logged[0], "other-controller-leader") || !strings.Contains(logged[0], "namespace of its own") {
			t.Fatalf("the warning: %q", logged)
		}
		// targetlock's own Leases (targets, ring members) are not reported.
		for _, own := range []string{"targetlock-escape", "targetlock-member-orchestrator-0"} {
			if strings.Contains(logged[0], `"`+own+`"`) {
				t.Errorf("targetlock's own Lease %s is reported: %s", own, logged[0])
			}
		}
		logged = nil
		manager.WarnSharedNamespace(context.Background(), env.Client, tenantB, log)
		if len(logged) != 0 {
			t.Errorf("a namespace without foreign Leases: %q", logged)
		}
	}},

	{"duplicateOf does not show a request in another namespace", func(t *testing.T) {
		mustCreate(t, as("opsuser"), newRR(opsNS, "confidential-dup", tenantA, "leak-dup", "dup-sig"))
		testenv.Eventually(t, 30*time.Second, func() error {
			r := &v1alpha1.RemediationRequest{}
			if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: opsNS, Name: "confidential-dup"}, r); err != nil {
				return err
			}
			if r.Status.Phase != v1alpha1.RemediationExecuting {
				return fmt.Errorf("the original is %q, want Executing", r.Status.Phase)
			}
			return nil
		})
		mustCreate(t, as("alice"), newRR(tenantA, "dup-of-ops", tenantA, "leak-dup", "dup-sig"))
		if rr := blockedAndRecorded(t, tenantA, "dup-of-ops", v1alpha1.BlockDuplicateInProgress); rr.Status.DuplicateOf == "" {
			t.Error("the status does not say it is a duplicate at all")
		}
	}},
}

func newRR(ns, name, tns, tname, fingerprint string) *v1alpha1.RemediationRequest {
	return &v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.RemediationRequestSpec{TargetResource: v1alpha1.ResourceIdentifier{Kind: "Deployment", Namespace: tns, Name: tname},
			SignalFingerprint: fingerprint, WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}}}
}

// blockedAndRecorded waits for the request to be Blocked for reason with
// its Event recorded, and fails the test if its status or any Event about
// it names anything in the ops namespace.
func blockedAndRecorded(t *testing.T, ns, name string, reason v1alpha1.BlockReason) *v1alpha1.RemediationRequest {
	t.Helper()
	rr := &v1alpha1.RemediationRequest{}
	var notes []string
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rr); err != nil {
			return err
		}
		if rr.Status.Phase != v1alpha1.RemediationBlocked || rr.Status.BlockReason != reason {
			return fmt.Errorf("%s is %s %s, want Blocked %s", name, rr.Status.Phase, rr.Status.BlockReason, reason)
		}
		evs := &eventsv1.EventList{}
		if err := env.Client.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
			return err
		}
		notes = notes[:0]
		for _, e := range evs.Items {
			if e.Regarding.Name == name {
				notes = append(notes, fmt.Sprint(e.Reason, " ", e.Note, " ", e.Related))
			}
		}
		if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, string(reason)) }) {
			return fmt.Errorf("no %s Event on %s yet: %q", reason, name, notes)
		}
		return nil
	})
	status, err := json.Marshal(rr.Status)
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range append(notes, string(status)) {
		for _, secret := range []string{opsNS + "/", "confidential"} {
			if strings.Contains(where, secret) {
				t.Errorf("%s shows %q: %s", name, secret, where)
			}
		}
	}
	return rr
}

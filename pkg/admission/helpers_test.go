package admission_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

type mod func(*v1alpha1.WorkflowExecution)

func withToken(tok string) mod {
	return func(w *v1alpha1.WorkflowExecution) {
		if w.Annotations == nil {
			w.Annotations = map[string]string{}
		}
		w.Annotations[v1alpha1.LockTokenAnnotation] = tok
	}
}

func withRR(name string) mod {
	return func(w *v1alpha1.WorkflowExecution) {
		w.Spec.RemediationRequestRef = &v1alpha1.ObjectRef{Name: name}
	}
}

func withLabel(k, v string) mod {
	return func(w *v1alpha1.WorkflowExecution) {
		if w.Labels == nil {
			w.Labels = map[string]string{}
		}
		w.Labels[k] = v
	}
}

func newWFE(ns, name, targetResource string, mods ...mod) *v1alpha1.WorkflowExecution {
	w := &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.WorkflowExecutionSpec{
			TargetResource: targetResource,
			WorkflowRef:    v1alpha1.WorkflowRef{WorkflowID: "restart-pod"},
		},
	}
	for _, m := range mods {
		m(w)
	}
	return w
}

// inNewNamespace returns the shared fixture and a namespace of the test's
// own, so that its targets and Leases are apart from every other test's.
func inNewNamespace(t testing.TB) (*fixture, string) {
	t.Helper()
	f := getFixture(t)
	return f, newNamespaceIn(t, f)
}

// newNamespaceIn creates a namespace of the test's own on f.
func newNamespaceIn(t testing.TB, f *fixture) string {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "adm-"}}
	if err := f.env.Client.Create(context.Background(), n); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return n.Name
}

func mustKey(t testing.TB, s string) target.Key {
	t.Helper()
	k, err := targettest.Resolver().Parse(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return k
}

func inspect(t testing.TB, f *fixture, s string) lease.State {
	t.Helper()
	st, err := f.orchestrator("inspector").Inspect(context.Background(), mustKey(t, s))
	if err != nil {
		t.Fatalf("inspecting %s: %v", s, err)
	}
	return st
}

// wantHolder fails t unless tgt's Lease is held by holder (a claim's
// "namespace/name").
func wantHolder(t testing.TB, f *fixture, tgt, holder string) {
	t.Helper()
	if s := inspect(t, f, tgt); s.Holder != holder {
		t.Errorf("%s: want the Lease held by %s, got %s", tgt, holder, s)
	}
}

// create creates w and returns nil or the API status of the refusal.
func create(t testing.TB, f *fixture, w *v1alpha1.WorkflowExecution) *metav1.Status {
	t.Helper()
	err := f.env.Client.Create(context.Background(), w)
	if err == nil {
		return nil
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		t.Fatalf("creating %s/%s: unexpected non-API error %v", w.Namespace, w.Name, err)
	}
	s := st.Status()
	return &s
}

func mustAdmit(t testing.TB, f *fixture, w *v1alpha1.WorkflowExecution) {
	t.Helper()
	if st := create(t, f, w); st != nil {
		t.Fatalf("creating %s/%s for %s: want admitted, got %d %s", w.Namespace, w.Name, w.Spec.TargetResource, st.Code, st.Message)
	}
}

func mustDeny(t testing.TB, f *fixture, w *v1alpha1.WorkflowExecution, reason string) *metav1.Status {
	t.Helper()
	st := create(t, f, w)
	if st == nil {
		t.Fatalf("creating %s/%s for %s: want denied %s, got admitted", w.Namespace, w.Name, w.Spec.TargetResource, reason)
	}
	if !contains(st.Message, reason+":") {
		t.Fatalf("creating %s/%s: want reason %s, got %d %s", w.Namespace, w.Name, reason, st.Code, st.Message)
	}
	return st
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// identityHash is the identity label of the canonical identity id, written
// out here rather than taken from pkg/target, which the webhook uses.
func identityHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:40]
}

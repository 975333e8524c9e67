package admission_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// orchestratorUser makes the requests of the handler's unit tests: the one
// requester trusted with lock tokens and any target.
const orchestratorUser = "system:serviceaccount:targetlock-system:targetlock-orchestrator"

// newScheme knows the core types and targetlock's.
func newScheme(tb testing.TB) *runtime.Scheme {
	tb.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		tb.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// newFakeHandler returns a Handler on an in-memory client.
func newFakeHandler(tb testing.TB, funcs *interceptor.Funcs, objs ...client.Object) (*admission.Handler, client.Client) {
	tb.Helper()
	s := newScheme(tb)
	// The plain tracker: the default field-managed one rebuilds a REST
	// mapper on every write, which would dominate the benchmark.
	tracker := clienttesting.NewObjectTracker(s, serializer.NewCodecFactory(s).UniversalDecoder())
	b := fake.NewClientBuilder().WithScheme(s).WithObjectTracker(tracker).WithObjects(objs...).
		WithStatusSubresource(&v1alpha1.WorkflowExecution{})
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	c := b.Build()
	clk := clocktesting.NewFakeClock(time.Now())
	lock, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: "webhook-test", ClaimGrace: claimGrace, Clock: clk})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := admission.New(admission.Options{Lock: lock, Resolver: targettest.Resolver(), Reader: c, Clock: clk,
		Trust: admission.Trust{Orchestrator: orchestratorUser}})
	if err != nil {
		tb.Fatal(err)
	}
	return h, c
}

// request builds a raw admission request for obj (marshalled unless it is
// already []byte).
func request(op admissionv1.Operation, ns, name string, obj any) cradmission.Request {
	raw, ok := obj.([]byte)
	if !ok {
		raw, _ = json.Marshal(obj)
	}
	return cradmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("req-" + name), Operation: op, Namespace: ns, Name: name, UserInfo: authenticationv1.UserInfo{Username: orchestratorUser},
		Resource: metav1.GroupVersionResource{Group: "targetlock.io", Version: "v1alpha1", Resource: "workflowexecutions"}, Object: runtime.RawExtension{Raw: raw},
	}}
}

func createRequest(w *v1alpha1.WorkflowExecution) cradmission.Request {
	if w.UID == "" {
		w.UID = types.UID("uid-" + w.Name)
	}
	return request(admissionv1.Create, w.Namespace, w.Name, w)
}

func leaseCount(tb testing.TB, c client.Reader, ns string) int {
	tb.Helper()
	list := &coordinationv1.LeaseList{}
	if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		tb.Fatalf("listing leases: %v", err)
	}
	return len(list.Items)
}

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

// TestLabelerStampsEverySpelling: the mutating handler gives every spelling
// of one object the same identity label, overwriting a forged one, and
// leaves targets it cannot resolve to the validating handler.
func TestLabelerStampsEverySpelling(t *testing.T) {
	l := admission.NewLabeler(targettest.Resolver())
	const want = "demo/Deployment.apps/app" // known by construction
	hash := identityHash(want)
	for _, tc := range []struct {
		target string
		labels map[string]string
	}{
		{"demo/Deployment/app", nil},
		{"demo/deployments/app", map[string]string{"team": "a"}},
		{"demo/deploy.apps/app", map[string]string{v1alpha1.TargetHashLabel: "forged"}},
	} {
		w := newWFE("demo", "w", tc.target)
		w.Labels = tc.labels
		resp := l.Handle(context.Background(), createRequest(w))
		if !resp.Allowed || len(resp.Patches) != 1 {
			t.Fatalf("%s: want one patch, got allowed=%v %v", tc.target, resp.Allowed, resp.Patches)
		}
		raw, _ := json.Marshal(w)
		patched := applyPatch(t, raw, resp.Patches)
		if got := patched.Labels[v1alpha1.TargetHashLabel]; got != hash {
			t.Errorf("%s: label %q, want %q", tc.target, got, hash)
		}
		for k, v := range tc.labels {
			if k != v1alpha1.TargetHashLabel && patched.Labels[k] != v {
				t.Errorf("%s: label %s lost", tc.target, k)
			}
		}
	}
	for _, tgt := range []string{"demo/Gadget/app", "x", "demo/Deployment.example.invalid/e"} {
		if resp := l.Handle(context.Background(), createRequest(newWFE("demo", "w", tgt))); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("%s: want allowed unchanged, got %v %v", tgt, resp.Allowed, resp.Patches)
		}
	}
}

func applyPatch(t *testing.T, raw []byte, ops []jsonpatch.JsonPatchOperation) *v1alpha1.WorkflowExecution {
	t.Helper()
	b, _ := json.Marshal(ops)
	p, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", b, err)
	}
	w := &v1alpha1.WorkflowExecution{}
	if err := json.Unmarshal(out, w); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestLostCompareAndSwapIsBounded: a Lease that changes on every write is
// never admitted blindly; after the bounded retries the CREATE is denied
// as retryable.
func TestLostCompareAndSwapIsBounded(t *testing.T) {
	creates := 0
	h, c := newFakeHandler(t, &interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				creates++
				return apierrors.NewAlreadyExists(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, obj.GetName())
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	resp := h.Handle(context.Background(), createRequest(newWFE("demo", "w", "demo/Deployment/app")))
	if resp.Allowed || resp.Result.Code != http.StatusConflict || !strings.Contains(resp.Result.Message, admission.ReasonContended) {
		t.Fatalf("want 409 Contended, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if creates != admission.DefaultMaxAttempts {
		t.Errorf("want %d claim attempts, got %d", admission.DefaultMaxAttempts, creates)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 0 {
		t.Errorf("want no Lease, got %d", n)
	}
}

// TestAPIErrorsNeverAdmit: whatever read or write fails, the CREATE is
// refused as retryable, never taken as "free".
func TestAPIErrorsNeverAdmit(t *testing.T) {
	boom := errors.New("etcdserver: request timed out")
	for name, funcs := range map[string]*interceptor.Funcs{
		"lease get": {Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok {
				return boom
			}
			return c.Get(ctx, key, obj, opts...)
		}},
		"wfe list": {List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			return boom
		}},
		"lease create": {Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return apierrors.NewInternalError(boom)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := newFakeHandler(t, funcs)
			resp := h.Handle(context.Background(), createRequest(newWFE("demo", "w", "demo/Deployment/app")))
			if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "retry") {
				t.Fatalf("want 503 asking to retry, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
			}
		})
	}
}

// TestClaimantLookupFailureNeverAdmits: a claim whose WFE cannot be read
// (API error) is not taken to be stale.
func TestClaimantLookupFailureNeverAdmits(t *testing.T) {
	h, c := newFakeHandler(t, &interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*v1alpha1.WorkflowExecution); ok {
				return apierrors.NewServiceUnavailable("try later")
			}
			return cl.Get(ctx, key, obj, opts...)
		},
	})
	if resp := h.Handle(context.Background(), createRequest(newWFE("demo", "first", "demo/Deployment/app"))); !resp.Allowed {
		t.Fatalf("first CREATE: %s", resp.Result.Message)
	}
	resp := h.Handle(context.Background(), createRequest(newWFE("demo", "second", "demo/Deployment/app")))
	if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable {
		t.Fatalf("want 503, got allowed=%v %d %q", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 1 {
		t.Errorf("want the first claim only, got %d Leases", n)
	}
}

func TestDryRunDecidesWithoutWriting(t *testing.T) {
	h, c := newFakeHandler(t, nil)
	req := createRequest(newWFE("demo", "w", "demo/Deployment/app"))
	req.DryRun = ptr.To(true)
	resp := h.Handle(context.Background(), req)
	if !resp.Allowed || resp.AuditAnnotations[admission.AnnotationReason] != admission.ReasonDryRun {
		t.Fatalf("want allowed as %s, got allowed=%v %v", admission.ReasonDryRun, resp.Allowed, resp.AuditAnnotations)
	}
	if n := leaseCount(t, c, leaseNamespace); n != 0 {
		t.Errorf("dry run wrote %d Leases", n)
	}
}

// TestRetriedRequestIsIdempotent: the API server may call the webhook again
// for the same object; the claim already naming it admits it again.
func TestRetriedRequestIsIdempotent(t *testing.T) {
	h, _ := newFakeHandler(t, nil)
	w := newWFE("demo", "w", "demo/Deployment/app")
	for i, want := range []string{admission.ReasonClaimed, admission.ReasonAlreadyClaimed} {
		resp := h.Handle(context.Background(), createRequest(w))
		if !resp.Allowed || resp.AuditAnnotations[admission.AnnotationReason] != want {
			t.Fatalf("call %d: want allowed as %s, got allowed=%v %v %q", i, want, resp.Allowed, resp.AuditAnnotations, resp.Result.Message)
		}
	}
}

// TestDirectClaimsAreBoundedPerNamespace: a namespace's direct CREATEs may
// claim only so many objects so fast; other namespaces and the orchestrator
// are not held back by it.
func TestDirectClaimsAreBoundedPerNamespace(t *testing.T) {
	h, _ := newFakeHandler(t, nil)
	as := func(user string, w *v1alpha1.WorkflowExecution) cradmission.Response {
		req := createRequest(w)
		req.UserInfo.Username = user
		return h.Handle(context.Background(), req)
	}
	for i := range admission.DefaultDirectClaimsBurst {
		if resp := as("alice", newWFE("demo", fmt.Sprintf("w-%d", i), fmt.Sprintf("demo/Deployment/app-%d", i))); !resp.Allowed {
			t.Fatalf("claim %d within the burst: %s", i, resp.Result.Message)
		}
	}
	resp := as("alice", newWFE("demo", "one-more", "demo/Deployment/one-more"))
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || !strings.Contains(resp.Result.Message, admission.ReasonRateLimited) {
		t.Errorf("a claim past the burst: allowed=%v %d %s", resp.Allowed, resp.Result.Code, resp.Result.Message)
	}
	if resp := as("bob", newWFE("other", "w", "other/Deployment/app")); !resp.Allowed {
		t.Errorf("another namespace was held back: %s", resp.Result.Message)
	}
	if resp := as(orchestratorUser, newWFE("demo", "orch", "demo/Deployment/orch")); !resp.Allowed {
		t.Errorf("the orchestrator was held back: %s", resp.Result.Message)
	}
}

// TestStaleCacheNeverDecidesAlone: the webhook reads the Lease and the
// object's other WFEs from informers first, but a cache that lags the API
// server neither refuses a free target nor admits a busy one.
func TestStaleCacheNeverDecidesAlone(t *testing.T) {
	key := mustKey(t, "demo/Deployment/app")
	owner := newWFE("demo", "owner", "demo/Deployment/app", withLabel(v1alpha1.TargetHashLabel, key.Hash()))
	owner.UID = "uid-owner"
	ended := owner.DeepCopy()
	ended.Status.Phase = v1alpha1.WorkflowExecutionCompleted
	claim := func(c client.Client) {
		t.Helper()
		l, err := lease.New(c, lease.Options{Namespace: leaseNamespace, Identity: "claimer", ClaimGrace: claimGrace})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Claim(context.Background(), lease.State{Key: key, Phase: lease.Free}, lease.Owner{Namespace: "demo", Name: "owner", UID: owner.UID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		live, cache []client.Object
		claimLive   bool
		claimCache  bool
		wantAllowed bool
	}{
		{"cache shows a claim the API server no longer has", []client.Object{ended}, []client.Object{owner}, false, true, true},
		{"cache shows an active WFE that has ended", []client.Object{ended}, []client.Object{owner}, false, false, true},
		{"cache has not seen the claim of an active WFE", []client.Object{owner}, nil, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, live, cache := newCachedHandler(t, tc.live, tc.cache)
			if tc.claimLive {
				claim(live)
			}
			if tc.claimCache {
				claim(cache)
			}
			resp := h.Handle(context.Background(), createRequest(newWFE("demo", "next", "demo/deployments/app")))
			if resp.Allowed != tc.wantAllowed {
				t.Fatalf("allowed=%v (%s), want %v", resp.Allowed, resp.Result.Message, tc.wantAllowed)
			}
			st, err := h.Lock().Inspect(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAllowed && (st.Holder != "demo/next" || st.Phase != lease.Claimed) {
				t.Errorf("after admission the live Lease is %s; want claimed by demo/next", st)
			}
			if !tc.wantAllowed && !strings.Contains(resp.Result.Message, admission.ReasonResourceBusy) {
				t.Errorf("refusal %q; want %s", resp.Result.Message, admission.ReasonResourceBusy)
			}
		})
	}
}

// newCachedHandler returns a Handler whose Lock and WFE lookups read a
// cache (a second in-memory client, indexed like the webhook's informers)
// before the live one.
func newCachedHandler(tb testing.TB, live, cached []client.Object) (*admission.Handler, client.Client, client.Client) {
	tb.Helper()
	s := newScheme(tb)
	build := func(objs []client.Object) client.Client {
		return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&v1alpha1.WorkflowExecution{}).
			WithIndex(&v1alpha1.WorkflowExecution{}, admission.IdentityIndex, admission.IndexIdentity()).Build()
	}
	lc, cc := build(live), build(cached)
	clk := clocktesting.NewFakeClock(time.Now())
	lock, err := lease.New(lc, lease.Options{Namespace: leaseNamespace, Identity: "webhook-test", ClaimGrace: claimGrace, Clock: clk, Cache: cc})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := admission.New(admission.Options{Lock: lock, Resolver: targettest.Resolver(), Reader: lc, Cache: cc, Clock: clk,
		Trust: admission.Trust{Orchestrator: orchestratorUser}})
	if err != nil {
		tb.Fatal(err)
	}
	return h, lc, cc
}

// TestLabelerStampsRequests: RemediationRequests get the same identity label
// as the WFEs of the same object; one it cannot resolve is left to the
// orchestrator, never refused.
func TestLabelerStampsRequests(t *testing.T) {
	l := admission.NewLabeler(targettest.Resolver())
	hash := identityHash("demo/Deployment.apps/app")
	rr := func(kind string) cradmission.Request {
		r := &v1alpha1.RemediationRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "rr", Labels: map[string]string{v1alpha1.TargetHashLabel: "forged"}},
			Spec:       v1alpha1.RemediationRequestSpec{TargetResource: v1alpha1.ResourceIdentifier{Kind: kind, Namespace: "demo", Name: "app"}},
		}
		req := request(admissionv1.Create, "demo", "rr", r)
		req.Kind = metav1.GroupVersionKind{Group: "targetlock.io", Version: "v1alpha1", Kind: "RemediationRequest"}
		return req
	}
	resp := l.Handle(context.Background(), rr("deployments"))
	if !resp.Allowed || len(resp.Patches) != 1 || resp.Patches[0].Value != hash {
		t.Fatalf("want one patch to %s, got allowed=%v %v", hash, resp.Allowed, resp.Patches)
	}
	if resp := l.Handle(context.Background(), rr("Gadget")); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("unknown kind: want allowed unchanged, got %v %v", resp.Allowed, resp.Patches)
	}
}

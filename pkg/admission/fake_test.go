package admission_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// orchestratorUser makes the requests of the handler's unit tests: the one
// requester trusted with lock tokens and any target.
const orchestratorUser = "system:serviceaccount:targetlock-system:targetlock-orchestrator"

// orchestratorInfo is orchestratorUser as the API server authenticates a
// ServiceAccount: with its groups, without which it is no orchestrator.
var orchestratorInfo = authenticationv1.UserInfo{Username: orchestratorUser,
	Groups: []string{"system:serviceaccounts", "system:serviceaccounts:targetlock-system", "system:authenticated"}}

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
		UID: types.UID("req-" + name), Operation: op, Namespace: ns, Name: name, UserInfo: orchestratorInfo,
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

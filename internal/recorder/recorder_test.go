package recorder

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

func newRecorder(t *testing.T, funcs interceptor.Funcs) (*Recorder, client.Client) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithInterceptorFuncs(funcs).Build()
	r := New(c, clientgoscheme.Scheme, "test-controller")
	r.backoff = wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	return r, c
}

// drain writes what is queued, as Start would.
func drain(r *Recorder) {
	for {
		select {
		case ev := <-r.queue:
			r.write(context.Background(), ev)
		default:
			return
		}
	}
}

func events(t *testing.T, c client.Client) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestRecordsTheEventClientGoWould(t *testing.T) {
	r, c := newRecorder(t, interceptor.Funcs{})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "cm", UID: "u1"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "p", UID: "u2"}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u3"}}
	r.Eventf(cm, pod, corev1.EventTypeNormal, "Created", "Route", "made %s", "it")
	r.AnnotatedEventf(node, nil, map[string]string{"k": "v"}, corev1.EventTypeWarning, "Denied", "Admit", "no")
	drain(r)

	got := events(t, c)
	if len(got) != 2 {
		t.Fatalf("want 2 Events, got %d", len(got))
	}
	for _, ev := range got {
		checkEvent(t, ev)
	}
}

// checkEvent checks one Event of TestRecordsTheEventClientGoWould.
func checkEvent(t *testing.T, ev eventsv1.Event) {
	t.Helper()
	if ev.ReportingController != "test-controller" || ev.ReportingInstance == "" || ev.EventTime.IsZero() {
		t.Errorf("%s: reporting %q/%q at %v", ev.Name, ev.ReportingController, ev.ReportingInstance, ev.EventTime)
	}
	switch ev.Reason {
	case "Created":
		if !isCreated(ev) {
			t.Errorf("Created: %+v", ev)
		}
	case "Denied":
		if !isDenied(ev) {
			t.Errorf("Denied: %+v", ev)
		}
	default:
		t.Errorf("unexpected Event %s", ev.Reason)
	}
}

// isCreated: the namespaced Event, with a related object.
func isCreated(ev eventsv1.Event) bool {
	return ev.Namespace == "demo" && ev.Regarding.Name == "cm" && ev.Regarding.UID == "u1" && ev.Related != nil && ev.Related.Name == "p" &&
		ev.Note == "made it" && ev.Action == "Route" && ev.Type == corev1.EventTypeNormal
}

// isDenied: a cluster-scoped object's Events go to the default namespace.
func isDenied(ev eventsv1.Event) bool {
	return ev.Namespace == metav1.NamespaceDefault && ev.Regarding.Kind == "Node" && ev.Related == nil && ev.Annotations["k"] == "v" &&
		ev.Type == corev1.EventTypeWarning
}

func TestRetriesWhileUnreachableDropsWhatIsRefused(t *testing.T) {
	calls := 0
	r, c := newRecorder(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		calls++
		switch obj.(*eventsv1.Event).Reason {
		case "Flaky":
			if calls == 1 {
				return errors.New("connection refused")
			}
		case "Refused":
			return apierrors.NewBadRequest("note too long")
		case "Overloaded":
			return apierrors.NewServiceUnavailable("try later")
		}
		return c.Create(ctx, obj, opts...)
	}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "cm"}}
	r.Eventf(cm, nil, corev1.EventTypeNormal, "Flaky", "a", "")
	drain(r)
	if calls != 2 || len(events(t, c)) != 1 {
		t.Errorf("flaky: %d calls, %d Events; want 2 calls, 1 Event", calls, len(events(t, c)))
	}
	calls = 0
	r.Eventf(cm, nil, corev1.EventTypeNormal, "Refused", "a", "")
	drain(r)
	if calls != 1 {
		t.Errorf("refused: %d calls, want 1 (no retry)", calls)
	}
	calls = 0
	r.Eventf(cm, nil, corev1.EventTypeNormal, "Overloaded", "a", "")
	drain(r)
	if calls != 3 {
		t.Errorf("overloaded: %d calls, want 3 (every step of the backoff)", calls)
	}
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	r, c := newRecorder(t, interceptor.Funcs{})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "cm"}}
	for range QueueLength + 10 {
		r.Eventf(cm, nil, corev1.EventTypeNormal, "Many", "a", "") // must not block
	}
	drain(r)
	if n := len(events(t, c)); n != QueueLength {
		t.Errorf("want the %d queued Events written, got %d", QueueLength, n)
	}
	// An object the scheme does not know is not recorded, and does not panic.
	r.Eventf(&v1alpha1.RemediationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "rr"}}, nil, corev1.EventTypeNormal, "X", "a", "")
	if len(r.queue) != 0 {
		t.Errorf("an Event without a reference was queued")
	}
}

func TestStartStopsWithItsContext(t *testing.T) {
	r, c := newRecorder(t, interceptor.Funcs{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	r.Eventf(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "cm"}}, nil, corev1.EventTypeNormal, "One", "a", "")
	_ = wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return len(events(t, c)) == 1, nil })
	cancel()
	if err := <-done; err != nil || len(events(t, c)) != 1 {
		t.Errorf("Start: %v, %d Events", err, len(events(t, c)))
	}
}

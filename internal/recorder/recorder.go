// Package recorder records events.k8s.io/v1 Events, as client-go's
// events.EventRecorder does, without its broadcaster's series cache.
//
// That cache keeps every Event for six to twelve minutes so that a repeat
// can be merged into a series. targetlock's Events never repeat (one per
// transition of a request, one per denied CREATE), and at tens of Events a
// second the cache held a third of the orchestrator's heap. Here an Event
// is queued, written once by a background writer, and forgotten.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// QueueLength bounds the Events waiting to be written; past it new ones
// are dropped (and logged), as client-go's broadcaster drops past 1000.
const QueueLength = 1000

// Recorder queues Events and writes them in the background once started
// (it is a controller-runtime Runnable, on every replica).
type Recorder struct {
	client     client.Client
	scheme     *runtime.Scheme
	controller string // reportingController
	instance   string // reportingInstance: controller-hostname
	clock      clock.PassiveClock
	queue      chan *eventsv1.Event
	backoff    wait.Backoff // between attempts to reach the API server
}

// New returns a Recorder writing with c, naming objects through scheme,
// reporting as controller.
func New(c client.Client, scheme *runtime.Scheme, controller string) *Recorder {
	host, _ := os.Hostname()
	return &Recorder{client: c, scheme: scheme, controller: controller, instance: controller + "-" + host,
		clock: clock.RealClock{}, queue: make(chan *eventsv1.Event, QueueLength),
		backoff: wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 5}}
}

// ForManager returns a Recorder writing with mgr's client, which mgr starts.
func ForManager(mgr manager.Manager, controller string) (*Recorder, error) {
	r := New(mgr.GetClient(), mgr.GetScheme(), controller)
	return r, mgr.Add(r)
}

// Eventf records an Event about regarding (and related, if not nil).
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

// AnnotatedEventf is Eventf with annotations on the Event.
func (r *Recorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any) {
	log := logf.Log.WithName("events")
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		log.Error(err, "Not recording an Event: no reference to its object", "reason", reason)
		return
	}
	var rel *corev1.ObjectReference
	if related != nil {
		if rel, err = reference.GetReference(r.scheme, related); err != nil {
			log.Error(err, "Recording an Event without its related object", "reason", reason)
		}
	}
	now := r.clock.Now()
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()),
			Namespace:   ns,
			Annotations: annotations,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             rel,
		Note:                fmt.Sprintf(note, args...),
		Type:                eventtype,
	}
	select {
	case r.queue <- ev:
	default:
		log.Info("Dropping an Event: the queue is full", "reason", reason, "regarding", ref.Namespace+"/"+ref.Name)
	}
}

// Start writes the queued Events until ctx ends.
func (r *Recorder) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-r.queue:
			r.write(ctx, ev)
		}
	}
}

// NeedLeaderElection is false: every replica records its own Events.
func (r *Recorder) NeedLeaderElection() bool { return false }

// write creates ev, retrying while the API server cannot be reached; an
// Event the API server refuses is dropped (it would be refused again).
func (r *Recorder) write(ctx context.Context, ev *eventsv1.Event) {
	err := wait.ExponentialBackoffWithContext(ctx, r.backoff, func(ctx context.Context) (bool, error) {
		err := r.client.Create(ctx, ev)
		var status apierrors.APIStatus
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &status) && !apierrors.IsServerTimeout(err) && !apierrors.IsTooManyRequests(err) && !apierrors.IsServiceUnavailable(err):
			return false, err // refused: it would be refused again
		}
		return false, nil // not reached, or overloaded: again after a pause
	})
	if err != nil && ctx.Err() == nil {
		logf.FromContext(ctx).WithName("events").Error(err, "Dropping an Event", "reason", ev.Reason, "regarding", ev.Regarding.Namespace+"/"+ev.Regarding.Name)
	}
}

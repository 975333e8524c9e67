package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// tracer timestamps one in-process replica's work, for the breakdown of a
// latency: each API request it sends (with the reconcile that sent it),
// each reconcile's start (controller-runtime's V(5) "Reconciling" log),
// and when its informers received the events that start a path. Bench
// only: nothing in pkg/ knows of it.
type tracer struct {
	mu         sync.Mutex
	requests   []tracedRequest
	reconciles []reconcileStart
	// events: "ended ns/name" (a WFE turned terminal), "created ns/name"
	// (a request), first receipt by the replica's informer.
	events map[string]time.Time
}

type tracedRequest struct {
	reconcile  types.UID // "" outside a reconcile
	label      string    // "PUT leases", "POST workflowexecutions", ...
	names      string    // URL path and body, to find an object's name in
	sent, done time.Time
	code       int // the response's status; 0: none
}

type reconcileStart struct {
	id         types.UID
	controller string
	object     string // namespace/name
	at         time.Time
}

func newTracer() *tracer { return &tracer{events: map[string]time.Time{}} }

// wrap is the replica's rest.Config.WrapTransport.
func (t *tracer) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		r := tracedRequest{reconcile: controller.ReconcileIDFromContext(req.Context()), label: label(req), names: req.URL.RequestURI()}
		if req.GetBody != nil && req.Method != http.MethodGet {
			if b, err := req.GetBody(); err == nil {
				body, _ := io.ReadAll(io.LimitReader(b, 4096))
				r.names += " " + string(body)
			}
		}
		r.sent = time.Now()
		resp, err := rt.RoundTrip(req)
		r.done = time.Now()
		if resp != nil {
			r.code = resp.StatusCode
		}
		if req.URL.Query().Get("watch") != "true" {
			t.mu.Lock()
			t.requests = append(t.requests, r)
			t.mu.Unlock()
		}
		return resp, err
	})
}

// label is a request's verb and resource (and subresource): the segment
// after the namespace's name, and the one after the object's name.
func label(req *http.Request) string {
	seg := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	i := slices.Index(seg, "namespaces")
	if i < 0 || i+2 >= len(seg) {
		return req.Method + " " + seg[len(seg)-1]
	}
	l := req.Method + " " + seg[i+2]
	if i+4 < len(seg) {
		l += "/" + seg[i+4]
	}
	return l
}

// logger is the replica manager's logger: base, plus the reconcile starts.
func (t *tracer) logger(base logr.Logger) logr.Logger {
	return logr.New(&traceSink{t: t, base: base})
}

// watch records, on mgr's informers, when the replica received a WFE's
// end and a request's creation.
func (t *tracer) watch(ctx context.Context, mgr ctrl.Manager) error {
	wfes, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.WorkflowExecution{})
	if err != nil {
		return err
	}
	if _, err := wfes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: func(old, new any) {
		o, n := old.(*v1alpha1.WorkflowExecution), new.(*v1alpha1.WorkflowExecution)
		if !o.Status.Phase.Terminal() && n.Status.Phase.Terminal() {
			t.event("ended " + n.Namespace + "/" + n.Name)
		}
	}}); err != nil {
		return err
	}
	rrs, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.RemediationRequest{})
	if err != nil {
		return err
	}
	_, err = rrs.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if rr, ok := obj.(*v1alpha1.RemediationRequest); ok {
			t.event("created " + rr.Namespace + "/" + rr.Name)
		}
	}})
	return err
}

func (t *tracer) event(key string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.events[key]; !ok {
		t.events[key] = now
	}
}

// traceSink passes everything to base, and records controller-runtime's
// V(5) "Reconciling" with the reconcile's ID and object.
type traceSink struct {
	t    *tracer
	base logr.Logger
	kv   []any
}

func (s *traceSink) Init(logr.RuntimeInfo)  {}
func (s *traceSink) Enabled(level int) bool { return level == 5 || s.base.GetSink().Enabled(level) }

func (s *traceSink) Info(level int, msg string, kv ...any) {
	if level == 5 && msg == "Reconciling" {
		s.reconciling()
	}
	if s.base.GetSink().Enabled(level) {
		s.base.V(level).Info(msg, kv...)
	}
}

func (s *traceSink) reconciling() {
	r := reconcileStart{at: time.Now()}
	var ns, name string
	for i := 0; i+1 < len(s.kv); i += 2 {
		v, _ := s.kv[i+1].(string)
		switch s.kv[i] {
		case "controller":
			r.controller = v
		case "namespace":
			ns = v
		case "name":
			name = v
		case "reconcileID":
			if id, ok := s.kv[i+1].(types.UID); ok {
				r.id = id
			}
		}
	}
	r.object = ns + "/" + name
	s.t.mu.Lock()
	s.t.reconciles = append(s.t.reconciles, r)
	s.t.mu.Unlock()
}

func (s *traceSink) Error(err error, msg string, kv ...any) { s.base.Error(err, msg, kv...) }

func (s *traceSink) WithValues(kv ...any) logr.LogSink {
	return &traceSink{t: s.t, base: s.base.WithValues(kv...), kv: append(slices.Clip(s.kv), kv...)}
}

func (s *traceSink) WithName(name string) logr.LogSink {
	return &traceSink{t: s.t, base: s.base.WithName(name), kv: s.kv}
}

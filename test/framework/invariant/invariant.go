// Package invariant watches WorkflowExecutions and records the most that
// were ever active at once on one object: the number targetlock keeps at 1.
//
// It is the checker of the project's promise, so it shares no code with what
// it checks: the caller says which object a WFE acts on, from what the test
// knows by construction, never through pkg/target.
package invariant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Identify names the object a WFE acts on; "" leaves the WFE uncounted.
type Identify func(*v1alpha1.WorkflowExecution) string

// ByName identifies a WFE's object by the name in its target, whatever the
// namespace and kind are spelled as: right for a test whose objects all
// have distinct names, and it can only over-count otherwise.
func ByName(w *v1alpha1.WorkflowExecution) string {
	return w.Spec.TargetResource[strings.LastIndexByte(w.Spec.TargetResource, '/')+1:]
}

// Watcher follows every WFE event in resourceVersion order, so it sees each
// state the API server stored, however briefly.
type Watcher struct {
	identify Identify

	mu     sync.Mutex
	active map[string]map[string]bool // object -> active WFEs
	seen   map[string]bool            // every WFE ever seen
	max    int
	worst  string
	err    error
}

// Watch starts watching WFEs in all namespaces until ctx ends. Call it
// before the WFEs are created. A watch that cannot resume (410 Gone) ends
// the evidence: Err says so, and no maximum is trusted after it.
func Watch(ctx context.Context, c client.WithWatch, identify Identify) (*Watcher, error) {
	w := &Watcher{identify: identify, active: map[string]map[string]bool{}, seen: map[string]bool{}}
	list := &v1alpha1.WorkflowExecutionList{}
	if err := c.List(ctx, list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		w.observe(watch.Added, &list.Items[i])
	}
	err := Follow(ctx, c, "the watch of WorkflowExecutions", list.ResourceVersion, &v1alpha1.WorkflowExecutionList{}, nil,
		func(ev watch.Event) {
			if o, ok := ev.Object.(*v1alpha1.WorkflowExecution); ok {
				w.observe(ev.Type, o)
			}
		}, w.fail)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Follow passes every event of a watch of list (from resourceVersion rv,
// resumed across reconnects) to on, in order, until ctx ends. A watch that
// cannot resume is reported to fail, naming it by what, and followed no
// further: the events after it would be evidence with a gap.
func Follow(ctx context.Context, c client.WithWatch, what, rv string, list client.ObjectList, opts []client.ListOption,
	on func(watch.Event), fail func(error)) error {
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, watcherFunc(func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return c.Watch(ctx, list, append(slices.Clone(opts), &client.ListOptions{Raw: &o})...)
	}))
	if err != nil {
		return err
	}
	go func() {
		defer rw.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					fail(errors.New(what + " ended"))
					return
				}
				if st, isStatus := ev.Object.(*metav1.Status); isStatus {
					fail(fmt.Errorf("%s failed: %s", what, st.Message))
					return
				}
				on(ev)
			}
		}
	}()
	return nil
}

// watcherFunc adapts a controller-runtime client's Watch to the RetryWatcher.
type watcherFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)

func (f watcherFunc) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return f(ctx, o)
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *Watcher) observe(t watch.EventType, wfe *v1alpha1.WorkflowExecution) {
	obj := w.identify(wfe)
	if obj == "" {
		return
	}
	id := wfe.Namespace + "/" + wfe.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[id] = true
	set := w.active[obj]
	if set == nil {
		set = map[string]bool{}
		w.active[obj] = set
	}
	if t == watch.Deleted || wfe.Status.Phase.Terminal() {
		delete(set, id)
		return
	}
	set[id] = true
	if len(set) > w.max {
		w.max = len(set)
		w.worst = fmt.Sprintf("%s: %v", obj, set)
	}
}

// MaxActive is the most WFEs ever active at once on one object, with the
// object and WFEs where that maximum was first reached.
func (w *Watcher) MaxActive() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max, w.worst
}

// Active is how many WFEs are active on obj now, as far as the watch has seen.
func (w *Watcher) Active(obj string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.active[obj])
}

// Seen is how many distinct WFEs were observed.
func (w *Watcher) Seen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// Err is why the watch ended before its context did, if it did: then the
// evidence is incomplete and must not be reported as kept.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

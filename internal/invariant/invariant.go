// Package invariant watches WorkflowExecutions and records the most that
// were ever active at once on one target: the number targetlock keeps at 1.
package invariant

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// Watcher follows every WFE event in resourceVersion order, so it sees each
// state the API server stored, however briefly.
type Watcher struct {
	mu      sync.Mutex
	active  map[string]map[string]bool // target key -> active WFEs
	seen    map[string]bool            // every WFE ever seen
	max     int
	worst   string
	stopped chan struct{}
}

// Watch starts watching WFEs in all namespaces until ctx ends. Call it
// before the WFEs are created.
func Watch(ctx context.Context, c client.WithWatch) (*Watcher, error) {
	w := &Watcher{active: map[string]map[string]bool{}, seen: map[string]bool{}, stopped: make(chan struct{})}
	list := &v1alpha1.WorkflowExecutionList{}
	if err := c.List(ctx, list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		w.observe(watch.Added, &list.Items[i])
	}
	rv := list.ResourceVersion
	go func() {
		defer close(w.stopped)
		for ctx.Err() == nil {
			wi, err := c.Watch(ctx, &v1alpha1.WorkflowExecutionList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err != nil {
				continue
			}
			for ev := range wi.ResultChan() {
				if wfe, ok := ev.Object.(*v1alpha1.WorkflowExecution); ok {
					w.observe(ev.Type, wfe)
					rv = wfe.ResourceVersion
				}
			}
		}
	}()
	return w, nil
}

func (w *Watcher) observe(t watch.EventType, wfe *v1alpha1.WorkflowExecution) {
	k, err := target.ForExecution(wfe)
	if err != nil {
		return
	}
	id := wfe.Namespace + "/" + wfe.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[id] = true
	set := w.active[k.String()]
	if set == nil {
		set = map[string]bool{}
		w.active[k.String()] = set
	}
	if t == watch.Deleted || wfe.Status.Phase.Terminal() {
		delete(set, id)
		return
	}
	set[id] = true
	if len(set) > w.max {
		w.max = len(set)
		w.worst = fmt.Sprintf("%s: %v", k, set)
	}
}

// MaxActive is the most WFEs ever active at once on one target, with the
// target and WFEs where that maximum was first reached.
func (w *Watcher) MaxActive() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max, w.worst
}

// Seen is how many distinct WFEs were observed.
func (w *Watcher) Seen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

const stormNS = "e2e-storm"

type stormResult struct {
	rrs, wfes, maxActive, podKills int
	admitted, denied, errored      int64
	worst                          string
	took                           time.Duration
}

func (r stormResult) String() string {
	return fmt.Sprintf("rrs=%d wfes=%d direct admitted=%d denied=%d errored=%d max_active_per_object=%d pod_kills=%d in %s",
		r.rrs, r.wfes, r.admitted, r.denied, r.errored, r.maxActive, r.podKills, r.took.Round(100*time.Millisecond))
}

// book maps every request and direct WFE the storm creates to the object it
// names, by construction: the checker never asks the code under test what a
// target is.
type book struct {
	mu     sync.Mutex
	object map[string]int // "rr/<name>" or "wfe/<name>" -> object
}

func (b *book) add(kind, name string, object int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.object[kind+"/"+name] = object
}

// objectOf is the object a WFE acts on: its own entry for a direct CREATE,
// else its RemediationRequest's.
func (b *book) objectOf(wfe *v1alpha1.WorkflowExecution) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.object["wfe/"+wfe.Name]; ok {
		return o, true
	}
	if ref := wfe.Spec.RemediationRequestRef; ref != nil {
		o, ok := b.object["rr/"+ref.Name]
		return o, ok
	}
	return 0, false
}

// checker follows every WFE event in resourceVersion order (RetryWatcher
// resumes after a dropped watch and fails loudly on 410 Gone), so it sees each
// state the API server stored, however briefly.
type checker struct {
	book    *book
	mu      sync.Mutex
	active  map[int]map[string]bool
	ended   map[string]bool // WFEs seen terminal or deleted
	max     int
	worst   string
	unknown []string
	err     error
	done    chan struct{}
}

func (e *e2e) watch(ctx context.Context, b *book) (*checker, error) {
	list := &v1alpha1.WorkflowExecutionList{}
	if err := e.c.List(ctx, list, client.InNamespace(stormNS)); err != nil {
		return nil, err
	}
	if len(list.Items) > 0 {
		return nil, fmt.Errorf("namespace %s already has %d WFEs", stormNS, len(list.Items))
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		return e.c.Watch(ctx, &v1alpha1.WorkflowExecutionList{}, client.InNamespace(stormNS), &client.ListOptions{Raw: &opts})
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		return nil, err
	}
	ch := &checker{book: b, active: map[int]map[string]bool{}, ended: map[string]bool{}, done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		defer rw.Stop()
		for ev := range rw.ResultChan() {
			switch wfe := ev.Object.(type) {
			case *v1alpha1.WorkflowExecution:
				ch.observe(ev.Type, wfe)
			case *metav1.Status:
				ch.mu.Lock()
				ch.err = fmt.Errorf("WFE watch ended: %s", wfe.Message)
				ch.mu.Unlock()
				return
			}
		}
	}()
	return ch, nil
}

func (ch *checker) observe(t watch.EventType, wfe *v1alpha1.WorkflowExecution) {
	if t == watch.Bookmark {
		return
	}
	obj, ok := ch.book.objectOf(wfe)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ok {
		ch.unknown = append(ch.unknown, wfe.Name)
		return
	}
	set := ch.active[obj]
	if set == nil {
		set = map[string]bool{}
		ch.active[obj] = set
	}
	if t == watch.Deleted || wfe.Status.Phase.Terminal() {
		delete(set, wfe.Name)
		ch.ended[wfe.Name] = true
		return
	}
	set[wfe.Name] = true
	if len(set) > ch.max {
		ch.max = len(set)
		ch.worst = fmt.Sprintf("object app-%02d: %v", obj, keys(set))
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// storm creates every object's requests and direct CREATEs spread over a
// few seconds, evicts a webhook pod and deletes an orchestrator pod while
// they run, and waits until every request has ended and every lock Lease is
// gone.
func (e *e2e) storm(ctx context.Context) (stormResult, error) {
	res := stormResult{}
	start := time.Now()
	if err := e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stormNS}}); err != nil {
		return res, err
	}
	stopExec, err := e.startExecutor(ctx)
	if err != nil {
		return res, err
	}
	defer stopExec()
	b := &book{object: map[string]int{}}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ch, err := e.watch(watchCtx, b)
	if err != nil {
		return res, err
	}

	var (
		cnt stormCounts
		wg  sync.WaitGroup
	)
	for obj := range e.objects {
		e.sendRRs(ctx, &wg, b, &cnt, obj)
		e.sendDirect(ctx, &wg, b, &cnt, obj)
	}
	// Mid-storm: once WFEs run, a webhook pod is evicted (the PDB and the
	// second replica keep admissions flowing) and an orchestrator pod dies.
	killErr := make(chan error, 1)
	wg.Go(func() { killErr <- e.midStorm(ctx, &res) })
	wg.Wait()
	if err := <-killErr; err != nil {
		return res, err
	}
	res.admitted, res.denied, res.errored = cnt.admitted.Load(), cnt.denied.Load(), cnt.errored.Load()

	if err := e.settle(ctx, ch); err != nil {
		return res, err
	}
	stopWatch()
	<-ch.done
	if err := e.tally(ctx, ch, &res); err != nil {
		return res, err
	}
	res.took = time.Since(start)
	return res, nil
}

// stormCounts are the answers to the storm's direct CREATEs; errored
// counts the requests' failed CREATEs too.
type stormCounts struct{ admitted, denied, errored atomic.Int64 }

// stormKinds spell one object two ways.
var stormKinds = []string{"Deployment", "deployment"}

// stormSpread is when, within the storm's first 8 seconds, a CREATE goes.
func stormSpread() time.Duration { return time.Duration(rand.IntN(8000)) * time.Millisecond }

// sendRRs creates the requests for object obj, spread over the storm.
func (e *e2e) sendRRs(ctx context.Context, wg *sync.WaitGroup, b *book, cnt *stormCounts, obj int) {
	name := fmt.Sprintf("app-%02d", obj)
	for i := range e.rrsPerObject {
		w := wrappers.MakeRR(stormNS, fmt.Sprintf("rr-%02d-%02d", obj, i)).Target(stormKinds[i%2], stormNS, name).
			Fingerprint(fmt.Sprintf("signal-%d", i%3)). // some requests duplicate others
			Workflow(fmt.Sprintf("workflow-%d", i%2))
		if i%4 == 3 {
			w.Parameter(executor.OutcomeParameter, "fail")
		}
		rr := w.Obj()
		b.add("rr", rr.Name, obj)
		wg.Go(func() {
			sleep(ctx, stormSpread())
			if err := e.c.Create(ctx, rr); err != nil {
				cnt.errored.Add(1)
				fmt.Printf("    create %s: %v\n", rr.Name, err)
			}
		})
	}
}

// sendDirect creates the direct WFEs for object obj, spread over the
// storm, and counts their answers.
func (e *e2e) sendDirect(ctx context.Context, wg *sync.WaitGroup, b *book, cnt *stormCounts, obj int) {
	name := fmt.Sprintf("app-%02d", obj)
	for i := range e.directPerObject {
		wfe := wrappers.MakeWFE(stormNS, fmt.Sprintf("direct-%02d-%d", obj, i)).
			TargetResource(fmt.Sprintf("%s/%s/%s", stormNS, stormKinds[i%2], name)).Workflow("manual").Obj()
		b.add("wfe", wfe.Name, obj)
		wg.Go(func() {
			sleep(ctx, stormSpread())
			switch err := e.c.Create(ctx, wfe); {
			case err == nil:
				cnt.admitted.Add(1)
			case apierrors.IsForbidden(err):
				cnt.denied.Add(1)
			default: // the webhook unreachable for a moment: refused, never admitted unchecked
				cnt.errored.Add(1)
				fmt.Printf("    create %s: %v\n", wfe.Name, err)
			}
		})
	}
}

// midStorm waits for the first WFE, then evicts a webhook pod and deletes
// an orchestrator pod, counting each in res.podKills.
func (e *e2e) midStorm(ctx context.Context, res *stormResult) error {
	if err := poll(ctx, time.Minute, "the first WFE", func(ctx context.Context) error {
		list := &v1alpha1.WorkflowExecutionList{}
		if err := e.c.List(ctx, list, client.InNamespace(stormNS)); err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return errors.New("none yet")
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range []struct {
		component string
		evict     bool
	}{{"webhook", true}, {"orchestrator", false}} {
		pod, err := e.killPod(ctx, k.component, k.evict)
		if err != nil {
			return fmt.Errorf("killing a %s pod: %w", k.component, err)
		}
		res.podKills++
		step(fmt.Sprintf("mid-storm: %s pod %s %s", k.component, pod, map[bool]string{true: "evicted", false: "deleted"}[k.evict]))
		sleep(ctx, 2*time.Second)
	}
	return nil
}

// settle waits for every request and WFE to end, every lock to be
// released, and the checker to have seen every WFE end.
func (e *e2e) settle(ctx context.Context, ch *checker) error {
	if err := poll(ctx, 5*time.Minute, "every request and WFE to end", func(ctx context.Context) error {
		return e.allEnded(ctx)
	}); err != nil {
		return err
	}
	if err := e.waitLocksReleased(ctx); err != nil {
		return err
	}
	// Events come in resourceVersion order: once the checker has seen every
	// WFE end, it has seen every state before.
	return poll(ctx, time.Minute, "the checker to see every WFE end", func(ctx context.Context) error {
		list := &v1alpha1.WorkflowExecutionList{}
		if err := e.c.List(ctx, list, client.InNamespace(stormNS)); err != nil {
			return err
		}
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if ch.err != nil {
			return ch.err
		}
		for _, w := range list.Items {
			if !ch.ended[w.Name] {
				return fmt.Errorf("WFE %s not seen ending yet", w.Name)
			}
		}
		return nil
	})
}

// tally fills res in from the stopped checker and the WFEs stored.
func (e *e2e) tally(ctx context.Context, ch *checker, res *stormResult) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.unknown) > 0 {
		return fmt.Errorf("WFEs the storm did not create: %v", ch.unknown)
	}
	list := &v1alpha1.WorkflowExecutionList{}
	if err := e.c.List(ctx, list, client.InNamespace(stormNS)); err != nil {
		return err
	}
	res.rrs, res.wfes = e.objects*e.rrsPerObject, len(list.Items)
	res.maxActive, res.worst = ch.max, ch.worst
	return nil
}

// waitLocksReleased waits until no lock Lease is left in the release
// namespace: every WFE has ended or gone, so every claim must be released.
func (e *e2e) waitLocksReleased(ctx context.Context) error {
	return poll(ctx, time.Minute, "every lock Lease to be released", func(ctx context.Context) error {
		leases := &coordinationv1.LeaseList{}
		if err := e.c.List(ctx, leases, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
			return err
		}
		if n := len(leases.Items); n > 0 {
			return fmt.Errorf("%d left, e.g. %s", n, leases.Items[0].Name)
		}
		return nil
	})
}

// allEnded is nil once every request is terminal and no WFE is active.
func (e *e2e) allEnded(ctx context.Context) error {
	rrs := &v1alpha1.RemediationRequestList{}
	if err := e.c.List(ctx, rrs, client.InNamespace(stormNS)); err != nil {
		return err
	}
	want := e.objects * e.rrsPerObject
	if len(rrs.Items) != want {
		return fmt.Errorf("%d of %d requests stored", len(rrs.Items), want)
	}
	phases := map[string]int{}
	open := 0
	for _, rr := range rrs.Items {
		phases[string(rr.Status.Phase)]++
		if !rr.Status.Phase.Terminal() {
			open++
		}
	}
	wfes := &v1alpha1.WorkflowExecutionList{}
	if err := e.c.List(ctx, wfes, client.InNamespace(stormNS)); err != nil {
		return err
	}
	active := 0
	for _, w := range wfes.Items {
		if !w.Status.Phase.Terminal() {
			active++
		}
	}
	if open > 0 || active > 0 {
		return fmt.Errorf("%d requests open %v, %d WFEs active", open, phases, active)
	}
	return nil
}

// startExecutor runs the simulated workflow engine in this process.
func (e *e2e) startExecutor(ctx context.Context) (func(), error) {
	return e.runManager(ctx, "executor", e.cfg, func(mgr ctrl.Manager) error {
		return (&executor.Executor{Client: mgr.GetClient(), Delay: e.executorDelay}).Setup(mgr, "executor")
	})
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

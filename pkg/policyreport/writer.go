package policyreport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// QueueLength bounds the entries waiting to be written; past it new ones
// are dropped and counted, never waited for.
const QueueLength = 1000

// maxBatch bounds the entries one pass takes from the queue.
const maxBatch = 500

// conflictBackoff paces the re-reads after a lost compare-and-swap: the
// webhook's replicas may write one namespace's Report at once.
var conflictBackoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 10}

// absentRecheck is how long the Writer drops entries, without asking the
// API server, after finding the Report CRD not installed.
const absentRecheck = time.Minute

// Writer records entries in the Reports, in the background (a
// controller-runtime Runnable, on every replica: each writes its own
// admissions, with a compare-and-swap on the Report's resourceVersion).
type Writer struct {
	client client.Client
	clock  clock.PassiveClock
	queue  chan Entry

	mu          sync.Mutex
	absentUntil time.Time // the CRD was not installed; drop until then
	absent      bool      // logged as absent, until found again
}

// NewWriter returns a Writer writing with c, which must read live (Reports
// are unstructured: controller-runtime's manager client reads them live).
func NewWriter(c client.Client, clk clock.PassiveClock) *Writer {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Writer{client: c, clock: clk, queue: make(chan Entry, QueueLength)}
}

// Record queues e and returns at once: the admission never waits on a
// Report. A full queue drops e (metric outcome dropped_queue_full).
func (w *Writer) Record(e Entry) {
	if e.Namespace == "" {
		return
	}
	select {
	case w.queue <- e:
	default:
		results.WithLabelValues(OutcomeQueueFull).Inc()
	}
}

// Start writes the queued entries until ctx ends, each pass one Report
// write per namespace for every entry queued by then.
func (w *Writer) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-w.queue:
			w.writeBatch(ctx, w.drain(e))
		}
	}
}

// NeedLeaderElection is false: every replica writes its own admissions.
func (w *Writer) NeedLeaderElection() bool { return false }

// drain groups first and whatever else is queued, up to maxBatch, by namespace.
func (w *Writer) drain(first Entry) map[string][]Entry {
	batch := map[string][]Entry{first.Namespace: {first}}
	for range maxBatch - 1 {
		select {
		case e := <-w.queue:
			batch[e.Namespace] = append(batch[e.Namespace], e)
		default:
			return batch
		}
	}
	return batch
}

func (w *Writer) writeBatch(ctx context.Context, batch map[string][]Entry) {
	log := logf.FromContext(ctx).WithName("policyreport")
	for ns, entries := range batch {
		if w.skipping() {
			results.WithLabelValues(OutcomeNotInstalled).Add(float64(len(entries)))
			continue
		}
		err := w.write(ctx, ns, entries)
		switch {
		case err == nil:
			w.found(ctx)
			results.WithLabelValues(OutcomeWritten).Add(float64(len(entries)))
		case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && isCRDMissing(err):
			w.missing(ctx)
			results.WithLabelValues(OutcomeNotInstalled).Add(float64(len(entries)))
		default:
			results.WithLabelValues(OutcomeFailed).Add(float64(len(entries)))
			if ctx.Err() == nil {
				log.Error(err, "Dropping Policy Report results", "namespace", ns, "results", len(entries))
			}
		}
	}
}

// write merges entries into ns's Report, creating it if need be; a lost
// compare-and-swap (a newer resourceVersion, another replica's create)
// reads again.
func (w *Writer) write(ctx context.Context, ns string, entries []Entry) error {
	return retry.OnError(conflictBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		r := &unstructured.Unstructured{}
		r.SetGroupVersionKind(GroupVersionKind)
		err := w.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name}, r)
		create := apierrors.IsNotFound(err) && !isCRDMissing(err)
		if err != nil && !create {
			return err
		}
		if create {
			r = &unstructured.Unstructured{}
			r.SetGroupVersionKind(GroupVersionKind)
			r.SetNamespace(ns)
			r.SetName(Name)
			r.SetLabels(map[string]string{"app.kubernetes.io/managed-by": Source})
		}
		merged := merge(resultsOf(r), entries)
		if err := setOwned(r, merged); err != nil {
			return err
		}
		if create {
			return w.client.Create(ctx, r)
		}
		return w.client.Update(ctx, r)
	})
}

// resultsOf reads the Report's results, whatever anyone wrote there: a
// result that does not decode is dropped, never fatal.
func resultsOf(r *unstructured.Unstructured) []result {
	raw, _, _ := unstructured.NestedSlice(r.Object, "results")
	out := make([]result, 0, len(raw))
	for _, item := range raw {
		b, err := json.Marshal(item)
		if err != nil {
			continue
		}
		var res result
		if json.Unmarshal(b, &res) == nil {
			out = append(out, res)
		}
	}
	return out
}

// setOwned sets the fields the Writer owns: source, results, summary.
func setOwned(r *unstructured.Unstructured, rs []result) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	var items []any
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	r.Object["source"] = Source
	r.Object["results"] = items
	r.Object["summary"] = summary(rs)
	return nil
}

// isCRDMissing tells a 404 for the resource (no such CRD served) from one
// for the object: the API server names the object it did not find.
func isCRDMissing(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

func (w *Writer) skipping() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.clock.Now().Before(w.absentUntil)
}

// missing notes the CRD absent; only the first time is logged.
func (w *Writer) missing(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.absentUntil = w.clock.Now().Add(absentRecheck)
	if !w.absent {
		w.absent = true
		logf.FromContext(ctx).WithName("policyreport").Info(fmt.Sprintf(
			"Not writing Policy Reports: the CRD reports.%s is not installed (install Open Reports or Kyverno, or set --policy-reports=false); checked again each minute while refusals occur",
			GroupVersionKind.Group))
	}
}

func (w *Writer) found(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.absent {
		w.absent = false
		logf.FromContext(ctx).WithName("policyreport").Info("Writing Policy Reports: the Report CRD is installed")
	}
}

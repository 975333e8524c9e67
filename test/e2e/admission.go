package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// admissionNS holds the timed WFEs and their twins; it goes with them.
const admissionNS = "e2e-admission"

// twinGroup serves the twin of the WorkflowExecution CRD: its schema and
// validation rules in a group no webhook matches, so that a twin CREATE
// costs what a WFE CREATE costs the API server, less the webhook calls.
const twinGroup = "twin.targetlock.io"

// admissionGap is the least time between the starts of two timed
// CREATEs, so that each, of whatever kind, follows a like pause. Half of
// them claim a target: 10 claims per second at most, the budget the
// webhook grants a requester, here the e2e's user
// (webhook.directClaimsPerSecond); it refuses the excess RateLimited.
const admissionGap = 50 * time.Millisecond

// admissionTimes are the timed CREATEs' durations by kind.
type admissionTimes struct {
	// labelled carry their identity label, as the orchestrator sends them
	// (the labelling webhook skips them); unlabelled pass both webhooks, as
	// a direct CREATE without the label; twin pass none.
	labelled, unlabelled, twin []time.Duration
}

// timeAdmission times WFE CREATEs through the API server, whose webhook
// calls go through the release's Service to its webhook pods, in turn with
// the same CREATE of the twin resource, so that a slower moment of the
// machine weighs on both. Every CREATE must be admitted and claim its
// target; it sets e.admissionRatio and removes what it created.
func (e *e2e) timeAdmission(ctx context.Context) error {
	if e.admissionSamples <= 0 {
		return nil
	}
	svc, err := e.enforcingService(ctx)
	if err != nil {
		return err
	}
	pods, err := e.readyPods(ctx, "webhook")
	if err != nil {
		return err
	}
	step(fmt.Sprintf("admission through Service %s to %d Ready webhook pods (enforce): %d labelled and %d unlabelled WFE CREATEs, each followed by its twin's",
		svc, pods, e.admissionSamples, e.admissionSamples))
	if err := e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: admissionNS}}); err != nil {
		return err
	}
	var t admissionTimes
	err = e.installTwin(ctx)
	before := e.decisions(ctx)
	if err == nil {
		t, err = e.timeCreates(ctx)
	}
	after := e.decisions(ctx)
	// Cleaned up either way: a failed timing leaves no claims behind either.
	err = errors.Join(err, e.removeAdmission(ctx))
	if err != nil {
		return fmt.Errorf("admission timing: %w", err)
	}
	l, u, tw := percentiles(t.labelled), percentiles(t.unlabelled), percentiles(t.twin)
	e.admissionRatio = ratio(l.p50, tw.p50)
	step(fmt.Sprintf("admission: labelled p50=%.1fms p99=%.1fms, unlabelled p50=%.1fms p99=%.1fms, twin p50=%.1fms p99=%.1fms; p50 ratio to twin: labelled %.2f, unlabelled %.2f",
		l.p50, l.p99, u.p50, u.p99, tw.p50, tw.p99, e.admissionRatio, ratio(u.p50, tw.p50)))
	step("admission: validating decisions per webhook pod, and their mean time in the handler: " + after.since(before))
	return nil
}

// decisionStats are, by webhook pod, the count and the sum (seconds) of
// its validating decisions (targetlock_webhook_admission_duration_seconds);
// nil when they could not be read (they are shown, not checked).
type decisionStats map[string][2]float64

const decisionMetric = "targetlock_webhook_admission_duration_seconds"

// decisions reads the decisionStats of the Ready webhook pods.
func (e *e2e) decisions(ctx context.Context) decisionStats {
	bodies, err := e.podMetrics(ctx, "webhook")
	if err != nil {
		step(fmt.Sprintf("admission: webhook metrics unread: %v", err))
		return nil
	}
	st := decisionStats{}
	for pod, body := range bodies {
		var cs [2]float64
		for line := range strings.Lines(string(body)) {
			for i, suffix := range []string{"_count", "_sum"} {
				if rest, ok := strings.CutPrefix(line, decisionMetric+suffix); ok {
					if f := strings.Fields(rest); len(f) > 0 {
						v, _ := strconv.ParseFloat(f[len(f)-1], 64)
						cs[i] += v
					}
				}
			}
		}
		st[pod] = cs
	}
	return st
}

// since says, for each pod of s, how many decisions it made since b and
// their mean time.
func (s decisionStats) since(b decisionStats) string {
	if s == nil || b == nil {
		return "unknown"
	}
	var parts []string
	for _, pod := range slices.Sorted(maps.Keys(s)) {
		n, sum := s[pod][0]-b[pod][0], s[pod][1]-b[pod][1]
		parts = append(parts, fmt.Sprintf("%s %.0f (%.1f ms)", pod, n, 1000*ratio(sum, n)))
	}
	return strings.Join(parts, ", ")
}

// enforcingService is the Service the release's validating webhook is
// called through, "namespace/name"; the webhook must enforce.
func (e *e2e) enforcingService(ctx context.Context) (string, error) {
	vwcs := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	if err := e.c.List(ctx, vwcs, client.MatchingLabels{"app.kubernetes.io/instance": e.release}); err != nil {
		return "", err
	}
	for _, v := range vwcs.Items {
		if got := v.Annotations["targetlock.io/enforcement"]; got != "enforce" {
			return "", fmt.Errorf("webhook configuration %s: enforcement %q, want enforce", v.Name, got)
		}
		for _, w := range v.Webhooks {
			if s := w.ClientConfig.Service; s != nil {
				return s.Namespace + "/" + s.Name, nil
			}
		}
	}
	return "", errors.New("no validating webhook of the release is called through a Service")
}

// readyPods counts the release's Ready pods of component.
func (e *e2e) readyPods(ctx context.Context, component string) (int, error) {
	pods := &corev1.PodList{}
	if err := e.c.List(ctx, pods, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/component": component}); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if podReady(&p, e.digest) == nil {
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("no Ready %s pod", component)
	}
	return n, nil
}

// installTwin creates the twin of the WFE CRD of --wfe-crd and waits until
// it is established.
func (e *e2e) installTwin(ctx context.Context) error {
	crds, err := readCRDs(e.wfeCRD)
	if err != nil {
		return err
	}
	if len(crds) != 1 || crds[0].Spec.Group != v1alpha1.GroupVersion.Group {
		return fmt.Errorf("%s: want the one CRD of group %s", e.wfeCRD, v1alpha1.GroupVersion.Group)
	}
	crd := crds[0]
	crd.Name, crd.Spec.Group = crd.Spec.Names.Plural+"."+twinGroup, twinGroup
	if err := e.c.Create(ctx, crd); err != nil {
		return fmt.Errorf("creating the twin CRD: %w", err)
	}
	return e.waitEstablished(ctx, []string{crd.Name})
}

// timeCreates runs a warm-up round, untimed, then e.admissionSamples timed
// rounds: a labelled CREATE, its twin's, an unlabelled CREATE, its twin's.
// Each names a target of its own, so every CREATE is admitted.
func (e *e2e) timeCreates(ctx context.Context) (admissionTimes, error) {
	var (
		t    admissionTimes
		next time.Time
	)
	for i := -1; i < e.admissionSamples; i++ {
		name := fmt.Sprintf("timed-%03d", i)
		if i < 0 {
			name = "warm-up"
		}
		for _, k := range []struct {
			suffix   string
			labelled bool
			into     *[]time.Duration
		}{{"-l", true, &t.labelled}, {"-u", false, &t.unlabelled}} {
			w, err := timedWFE(name+k.suffix, k.labelled)
			if err != nil {
				return t, err
			}
			for _, obj := range []*unstructured.Unstructured{w, twinOf(w)} {
				sleep(ctx, time.Until(next))
				next = time.Now().Add(admissionGap)
				d, err := e.timedCreate(ctx, obj)
				if err != nil {
					return t, err
				}
				switch {
				case i < 0:
				case obj == w:
					*k.into = append(*k.into, d)
				default:
					t.twin = append(t.twin, d)
				}
			}
		}
	}
	return t, e.timedClaims(ctx, 2*(e.admissionSamples+1))
}

// timedCreate times the CREATE of obj, which must be admitted.
func (e *e2e) timedCreate(ctx context.Context, obj *unstructured.Unstructured) (time.Duration, error) {
	start := time.Now()
	if err := e.c.Create(ctx, obj); err != nil {
		return 0, fmt.Errorf("CREATE %s %s, on a target of its own, not admitted: %w", obj.GetAPIVersion(), obj.GetName(), err)
	}
	return time.Since(start), nil
}

// timedClaims checks that the webhook claimed the targets of the want
// admitted WFEs: each holds a lock Lease.
func (e *e2e) timedClaims(ctx context.Context, want int) error {
	leases := &coordinationv1.LeaseList{}
	if err := e.c.List(ctx, leases, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
		return err
	}
	if n := len(leases.Items); n < want {
		return fmt.Errorf("%d lock Leases for %d admitted WFEs on distinct targets: the webhook did not claim every target", n, want)
	}
	return nil
}

// timedWFE is a direct WFE name for the Deployment of that name in
// admissionNS, as unstructured as its twin, so that both are sent alike;
// labelled, it carries its identity label as the orchestrator sends it.
func timedWFE(name string, labelled bool) (*unstructured.Unstructured, error) {
	b := wrappers.MakeWFE(admissionNS, name).Target("Deployment", admissionNS, name).Workflow("manual")
	if labelled {
		b.Label(v1alpha1.TargetHashLabel, deploymentHash(admissionNS, name))
	}
	w := b.Obj()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("WorkflowExecution"))
	return u, nil
}

// twinOf is w as an object of the twin resource.
func twinOf(w *unstructured.Unstructured) *unstructured.Unstructured {
	t := w.DeepCopy()
	t.SetAPIVersion(twinGroup + "/" + v1alpha1.GroupVersion.Version)
	return t
}

// deploymentHash is the identity label of Deployment ns/name: the hash of
// its canonical identity, written out here rather than taken from
// pkg/target, which the webhook checks it against.
func deploymentHash(ns, name string) string {
	sum := sha256.Sum256([]byte(ns + "/Deployment.apps/" + name))
	return hex.EncodeToString(sum[:])[:40]
}

// removeAdmission deletes the timed WFEs, waits for the system to release
// their claims, and deletes the twin CRD (its objects with it) and the
// namespace.
func (e *e2e) removeAdmission(ctx context.Context) error {
	if err := e.c.DeleteAllOf(ctx, &v1alpha1.WorkflowExecution{}, client.InNamespace(admissionNS)); err != nil {
		return err
	}
	if err := e.waitLocksReleased(ctx); err != nil {
		return fmt.Errorf("the timed WFEs deleted: %w", err)
	}
	twin := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "workflowexecutions." + twinGroup}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: admissionNS}}
	for _, o := range []client.Object{twin, ns} {
		if err := e.c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return poll(ctx, 2*time.Minute, "the twin CRD and namespace "+admissionNS+" to go", func(ctx context.Context) error {
		for _, o := range []client.Object{twin, ns} {
			switch err := e.c.Get(ctx, client.ObjectKeyFromObject(o), o); {
			case err == nil:
				return fmt.Errorf("%s still there", o.GetName())
			case !apierrors.IsNotFound(err):
				return err
			}
		}
		return nil
	})
}

// pcts are the percentiles of a sample, in milliseconds.
type pcts struct{ p50, p99 float64 }

// percentiles are the nearest-rank P50 and P99 of ds, as the bench takes them.
func percentiles(ds []time.Duration) pcts {
	if len(ds) == 0 {
		return pcts{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return float64(s[min(max(i, 0), len(s)-1)]) / float64(time.Millisecond)
	}
	return pcts{rank(50), rank(99)}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

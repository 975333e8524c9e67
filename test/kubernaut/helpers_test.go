package kubernaut_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gomegatypes "github.com/onsi/gomega/types"

	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apitypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var (
	wfeGVK = schema.GroupVersionKind{Group: kubernautGroup, Version: "v1alpha1", Kind: "WorkflowExecution"}
	rrGVK  = schema.GroupVersionKind{Group: kubernautGroup, Version: "v1alpha1", Kind: "RemediationRequest"}
)

var seq atomic.Int64

// uniq is a name no other case uses, so cases run in any order.
func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// splitTarget is kubernaut's "namespace/kind/name" or "kind/name".
func splitTarget(t string) (ns, kind, name string) {
	parts := strings.Split(t, "/")
	if len(parts) == 3 {
		return parts[0], parts[1], parts[2]
	}
	if len(parts) == 2 {
		return "", parts[0], parts[1]
	}
	return "", t, t
}

// rrObject is a RemediationRequest as kubernaut's Gateway creates it from
// an alert on target (the RR's targetResource names the object).
func rrObject(name, target, clusterID string) *unstructured.Unstructured {
	ns, kind, tname := splitTarget(target)
	now := time.Now().UTC().Format(time.RFC3339)
	tr := map[string]any{"kind": kind, "name": tname}
	if ns != "" {
		tr["namespace"] = ns
	}
	spec := map[string]any{
		"signalFingerprint": sha256Hex(name),
		"signalName":        "KubePodCrashLooping",
		"signalType":        "alert",
		"signalSource":      "prometheus",
		"severity":          "critical",
		"firingTime":        now,
		"receivedTime":      now,
		"targetType":        "kubernetes",
		"targetResource":    tr,
		"signalLabels":      map[string]any{"alertname": "KubePodCrashLooping", "namespace": ns},
	}
	if clusterID != "" {
		spec["clusterID"] = clusterID
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(rrGVK)
	u.SetNamespace(kubernautNS)
	u.SetName(name)
	return u
}

// wfeObject is a WorkflowExecution as kubernaut's RO creator builds it
// (pkg/remediationorchestrator/creator/workflowexecution.go): named
// we-<rr>, in the RR's namespace, owned by the RR, with the workflow the
// AI analysis selected. rr nil: a reference to an RR that is not read.
func wfeObject(ns, name string, rr *unstructured.Unstructured, target, clusterID string) *unstructured.Unstructured {
	ref := map[string]any{"apiVersion": rrGVK.GroupVersion().String(), "kind": "RemediationRequest",
		"name": "rr-" + name, "namespace": ns}
	if rr != nil {
		ref["name"], ref["namespace"], ref["uid"] = rr.GetName(), rr.GetNamespace(), string(rr.GetUID())
	}
	spec := map[string]any{
		"remediationRequestRef": ref,
		"targetResource":        target,
		"workflowRef": map[string]any{
			"workflowId":            "6f1c2b1e-7d0a-4c3e-9b8f-2a4d5e6f7a8b",
			"workflowName":          "restart-deployment",
			"actionType":            "RestartDeployment",
			"version":               "1.2.0",
			"executionBundle":       "quay.io/kubernaut/workflows/restart-deployment@sha256:" + sha256Hex("bundle"),
			"executionBundleDigest": "sha256:" + sha256Hex("bundle"),
			"executionEngine":       "job",
			"serviceAccountName":    "kubernaut-workflow-runner",
		},
		"parameters": map[string]any{"TARGET_RESOURCE": target},
		"confidence": 0.92,
		"rationale":  "pods crash-loop after a config change; a rollout restart recovers them",
	}
	if clusterID != "" {
		spec["clusterID"] = clusterID
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(wfeGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	if rr != nil {
		yes := true
		u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: rrGVK.GroupVersion().String(), Kind: "RemediationRequest",
			Name: rr.GetName(), UID: rr.GetUID(), Controller: &yes, BlockOwnerDeletion: &yes}})
	}
	return u
}

// newRR has the Gateway create a RemediationRequest for target.
func newRR(ctx context.Context, target, clusterID string) *unstructured.Unstructured {
	GinkgoHelper()
	rr := rrObject(uniq("rr"), target, clusterID)
	Expect(gateway.Create(ctx, rr)).To(Succeed(), "the Gateway creating its RemediationRequest")
	return rr
}

// roCreateFor has RO pod create the WFE of rr (named we-<rr>, as kubernaut
// names it) for target; the WFE as sent and the CREATE's error.
func roCreateFor(ctx context.Context, pod string, rr *unstructured.Unstructured, target, clusterID string, opts ...client.CreateOption) (*unstructured.Unstructured, error) {
	w := wfeObject(rr.GetNamespace(), "we-"+rr.GetName(), rr, target, clusterID)
	return w, ro(pod).Create(ctx, w, opts...)
}

// roCreate: the Gateway creates an RR for target, then RO pod creates its WFE.
func roCreate(ctx context.Context, pod, target, clusterID string, opts ...client.CreateOption) (*unstructured.Unstructured, error) {
	rr := rrObject(uniq("rr"), target, clusterID)
	if err := gateway.Create(ctx, rr); err != nil {
		return nil, fmt.Errorf("the Gateway creating its RemediationRequest: %w", err)
	}
	return roCreateFor(ctx, pod, rr, target, clusterID, opts...)
}

// admitted asserts a CREATE was admitted and the WFE stored.
func admitted(ctx context.Context, w *unstructured.Unstructured, err error) {
	GinkgoHelper()
	Expect(err).NotTo(HaveOccurred(), "CREATE of %s for %q", name(w), target(w))
	Expect(exists(ctx, w)).To(BeTrue(), "the admitted WFE %s is stored", name(w))
}

// refusedBy is an error of a CREATE the webhook denied, naming reason.
func refusedBy(reason string) gomegatypes.GomegaMatcher {
	return MatchError(And(ContainSubstring("admission webhook"), ContainSubstring("denied the request"), ContainSubstring(reason)))
}

// refused asserts the webhook denied a CREATE for reason and nothing was stored.
func refused(ctx context.Context, w *unstructured.Unstructured, err error, reason string) {
	GinkgoHelper()
	Expect(err).To(refusedBy(reason), "CREATE of %s for %q", name(w), target(w))
	Expect(exists(ctx, w)).To(BeFalse(), "the refused WFE %s is not stored", name(w))
}

func name(w *unstructured.Unstructured) string {
	if w == nil {
		return "<nil>"
	}
	return w.GetNamespace() + "/" + w.GetName()
}

func target(w *unstructured.Unstructured) string {
	if w == nil {
		return ""
	}
	t, _, _ := unstructured.NestedString(w.Object, "spec", "targetResource")
	return t
}

// exists reads the WFE live.
func exists(ctx context.Context, w *unstructured.Unstructured) bool {
	GinkgoHelper()
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(wfeGVK)
	err := admin.Get(ctx, client.ObjectKey{Namespace: w.GetNamespace(), Name: w.GetName()}, got)
	if apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred())
	return true
}

// getWFE reads the WFE live.
func getWFE(ctx context.Context, ns, n string) *unstructured.Unstructured {
	GinkgoHelper()
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(wfeGVK)
	Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, got)).To(Succeed())
	return got
}

func phaseOf(ctx context.Context, w *unstructured.Unstructured) string {
	GinkgoHelper()
	p, _, _ := unstructured.NestedString(getWFE(ctx, w.GetNamespace(), w.GetName()).Object, "status", "phase")
	return p
}

// patchStatus merge-patches the WFE's status through /status as c.
func patchStatus(ctx context.Context, c client.Client, w *unstructured.Unstructured, status map[string]any, opts ...client.SubResourcePatchOption) error {
	data, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(w.GroupVersionKind())
	obj.SetNamespace(w.GetNamespace())
	obj.SetName(w.GetName())
	return c.Status().Patch(ctx, obj, client.RawPatch(apitypes.MergePatchType, data), opts...)
}

// setPhase is kubernaut's WE controller moving the WFE to phase, with the
// timestamps it writes alongside.
func setPhase(ctx context.Context, w *unstructured.Unstructured, phase string) error {
	now := time.Now().UTC().Format(time.RFC3339)
	status := map[string]any{"phase": phase}
	switch phase {
	case "Running":
		status["startTime"] = now
		status["executionRef"] = map[string]any{"name": w.GetName() + "-job"}
	case "Completed", "Failed":
		status["completionTime"] = now
		status["duration"] = "12s"
		if phase == "Failed" {
			status["failureReason"] = "TaskFailed"
		}
	}
	return patchStatus(ctx, weCtl, w, status)
}

// complete is the WE controller running the WFE to Completed.
func complete(ctx context.Context, w *unstructured.Unstructured) {
	GinkgoHelper()
	Expect(setPhase(ctx, w, "Running")).To(Succeed())
	Expect(setPhase(ctx, w, "Completed")).To(Succeed())
}

// roLockName is kubernaut RO's own Lease for a target string
// (pkg/remediationorchestrator/locking: "ro-lock-" + 16 hex of SHA-256).
func roLockName(target string) string { return "ro-lock-" + sha256Hex(target)[:16] }

// roLock is the Lease RO pod holds on target while it creates the WFE.
func roLock(ctx context.Context, pod, target string) *coordinationv1.Lease {
	GinkgoHelper()
	now := metav1.NewMicroTime(time.Now())
	d := int32(30)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: roLockName(target)},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &pod, LeaseDurationSeconds: &d,
			AcquireTime: &now, RenewTime: &now},
	}
	Expect(ro(pod).Create(ctx, l)).To(Succeed())
	return l
}

// leasesMentioning lists every Lease in the cluster whose JSON carries s.
func leasesMentioning(ctx context.Context, s string) []string {
	GinkgoHelper()
	var ls coordinationv1.LeaseList
	Expect(admin.List(ctx, &ls)).To(Succeed())
	var out []string
	for _, l := range ls.Items {
		data, err := json.Marshal(l)
		Expect(err).NotTo(HaveOccurred())
		if mentions(data, s) {
			out = append(out, l.Namespace+"/"+l.Name)
		}
	}
	return out
}

// eventsMentioning lists every Event in the cluster whose JSON carries s.
func eventsMentioning(ctx context.Context, s string) []string {
	GinkgoHelper()
	var es eventsv1.EventList
	Expect(admin.List(ctx, &es)).To(Succeed())
	var out []string
	for _, e := range es.Items {
		data, err := json.Marshal(e)
		Expect(err).NotTo(HaveOccurred())
		if mentions(data, s) {
			out = append(out, e.Namespace+"/"+e.Name)
		}
	}
	return out
}

// mentions reports whether data carries the name s, not merely a longer
// name it starts (we-rr-1 is not in we-rr-12).
func mentions(data []byte, s string) bool {
	return regexp.MustCompile(regexp.QuoteMeta(s) + `($|[^a-z0-9.-])`).Match(data)
}

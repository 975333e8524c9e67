// Package policyreport keeps the webhook's durable audit trail: each
// refused WorkflowExecution CREATE (and each one warn mode admitted though
// it would have been refused) becomes a result in an openreports.io/v1alpha1
// Report in the requester's namespace, the format Kyverno, Trivy and Falco
// write. A Writer records them off the admission path, bounded; List reads
// them back.
//
// One Report per namespace, named Name, holds at most MaxResults results,
// the last written. A refusal of the same target, for the same reason, by
// the same requester, with the same result, adds to its result's count
// property rather than adding a result. The Report is targetlock's: results
// of any other source or policy in it are dropped on the next write.
package policyreport

import (
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// The Report and what every result of targetlock's says.
const (
	// Name of the Report in each namespace.
	Name = "targetlock-admission"
	// Source of the Report and of each result.
	Source = "targetlock"
	// Policy of each result; its rule is the refusal's reason.
	Policy = "targetlock/one-active-wfe-per-target"
	// MaxResults bounds the results of one Report: the last written stay.
	MaxResults = 100
	// maxMessage bounds a result's message.
	maxMessage = 1000
	// maxCount bounds the count a result is read with.
	maxCount = 1 << 30
)

// Results: fail, a CREATE refused; warn, a CREATE warn mode admitted
// though it would have been refused.
const (
	ResultFail = "fail"
	ResultWarn = "warn"
)

// Properties of each result.
const (
	PropertyTarget    = "target"
	PropertyHolder    = "holder"
	PropertyRequester = "requester"
	PropertyCount     = "count"
)

// GroupVersionKind of the Report.
var GroupVersionKind = schema.GroupVersionKind{Group: "openreports.io", Version: "v1alpha1", Kind: "Report"}

// Entry is one refusal, as the webhook records it.
type Entry struct {
	Time time.Time
	// Namespace of the refused WorkflowExecution (the requester's): the
	// Report's.
	Namespace string
	// WorkflowExecution names the refused object; APIVersion is its group/version.
	WorkflowExecution string
	UID               types.UID
	APIVersion        string
	Reason            string
	Target            string
	Holder            string
	Requester         string
	Message           string
	// Warned: admitted by warn mode (result warn), not refused (fail).
	Warned bool
}

func (e Entry) result() string {
	if e.Warned {
		return ResultWarn
	}
	return ResultFail
}

// result is one result of the Report, as this package writes and reads it.
type result struct {
	Source     string                   `json:"source"`
	Policy     string                   `json:"policy"`
	Rule       string                   `json:"rule,omitempty"`
	Result     string                   `json:"result,omitempty"`
	Timestamp  timestamp                `json:"timestamp"`
	Subjects   []corev1.ObjectReference `json:"resources,omitempty"`
	Message    string                   `json:"message,omitempty"`
	Properties map[string]string        `json:"properties,omitempty"`
}

type timestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

func (t timestamp) time() time.Time { return time.Unix(t.Seconds, int64(t.Nanos)) }

func timestampOf(t time.Time) timestamp {
	return timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

// ours reports whether r is a result targetlock wrote.
func (r result) ours() bool { return r.Source == Source && r.Policy == Policy }

// key is what aggregates results: the same target, reason, requester and result.
type key struct{ target, reason, requester, result string }

func (r result) key() key {
	return key{r.Properties[PropertyTarget], r.Rule, r.Properties[PropertyRequester], r.Result}
}

func (r result) count() int {
	n, err := strconv.Atoi(r.Properties[PropertyCount])
	switch {
	case err != nil || n < 1:
		return 1
	case n > maxCount:
		return maxCount // whatever was written there, +1 never overflows
	}
	return n
}

func newResult(e Entry) result {
	return result{
		Source: Source, Policy: Policy, Rule: e.Reason, Result: e.result(),
		Timestamp: timestampOf(e.Time),
		Subjects: []corev1.ObjectReference{{APIVersion: e.APIVersion, Kind: "WorkflowExecution",
			Namespace: e.Namespace, Name: e.WorkflowExecution, UID: e.UID}},
		Message: truncate(e.Message, maxMessage),
		Properties: map[string]string{PropertyTarget: e.Target, PropertyHolder: e.Holder,
			PropertyRequester: e.Requester, PropertyCount: "1"},
	}
}

// merge adds entries to results (those of the Report so far, ours only):
// a repeat of a result's key raises its count, takes the newest subject,
// message, holder and time, and moves to the end; then the MaxResults last
// written stay. Order is the order of writes, not the timestamps anyone
// may have written: a result forged with a time far ahead is pushed out
// like any other.
func merge(results []result, entries []Entry) []result {
	out := slices.DeleteFunc(slices.Clone(results), func(r result) bool { return !r.ours() })
	for _, e := range entries {
		n := newResult(e)
		if i := slices.IndexFunc(out, func(r result) bool { return r.key() == n.key() }); i >= 0 {
			n.Properties[PropertyCount] = strconv.Itoa(out[i].count() + 1)
			if out[i].Timestamp.time().After(n.Timestamp.time()) {
				n.Timestamp = out[i].Timestamp
			}
			out = slices.Delete(out, i, i+1)
		}
		out = append(out, n)
	}
	if len(out) > MaxResults {
		out = out[len(out)-MaxResults:]
	}
	return out
}

// summary counts results by result, as the Report's summary does.
func summary(results []result) map[string]any {
	s := map[string]any{"pass": int64(0), "fail": int64(0), "warn": int64(0), "error": int64(0), "skip": int64(0)}
	for _, r := range results {
		if n, ok := s[r.Result].(int64); ok {
			s[r.Result] = n + 1
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

package routing

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

// TargetField is the WFE field the API server can select on.
const TargetField = "spec.targetResource"

// Block says why a request may not run now.
type Block struct {
	Reason  v1alpha1.BlockReason
	Message string
	// Until is when a time-based block ends; zero for event-driven blocks
	// (DuplicateInProgress, ResourceBusy), which end when the holder does.
	Until time.Time
	// BlockingWorkflowExecution and DuplicateOf name the holder, if any.
	BlockingWorkflowExecution string
	DuplicateOf               string
	// Skip means the request needs no run at all: the duplicate it waited
	// for has completed the same remediation.
	Skip bool
}

// Input is everything the checks look at, read once per decision.
type Input struct {
	RR  *v1alpha1.RemediationRequest
	Key target.Key
	Now time.Time
	// Peers are the other requests with the same signal and target.
	Peers []v1alpha1.RemediationRequest
	// Executions are the WFEs for the target, in every namespace.
	Executions []v1alpha1.WorkflowExecution
}

// check is one blocking rule; nil means it does not block.
type check func(in *Input, o Options) *Block

// checks run in this order; the first that blocks decides.
var checks = []check{consecutiveFailures, duplicateInProgress, resourceBusy, recentlyRemediated, exponentialBackoff}

// Engine runs the checks on live reads.
type Engine struct {
	reader client.Reader
	mapper meta.RESTMapper
	opts   Options
	clock  clock.PassiveClock
}

// NewEngine returns an Engine. reader must read live (a manager's API
// reader). mapper, if not nil, supplies the API's own spelling of a kind.
func NewEngine(reader client.Reader, mapper meta.RESTMapper, opts Options, clk clock.PassiveClock) *Engine {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Engine{reader: reader, mapper: mapper, opts: opts.Defaults(), clock: clk}
}

// Options returns the engine's options with defaults applied.
func (e *Engine) Options() Options { return e.opts }

// Check returns the first block that applies to rr, or nil if it may run.
func (e *Engine) Check(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (*Block, error) {
	in, err := e.read(ctx, rr, key)
	if err != nil {
		return nil, err
	}
	return Decide(in, e.opts), nil
}

// Decide runs the checks on in.
func Decide(in *Input, o Options) *Block {
	for _, c := range checks {
		if b := c(in, o); b != nil {
			return b
		}
	}
	return nil
}

func (e *Engine) read(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (*Input, error) {
	peers, err := e.peers(ctx, rr, key)
	if err != nil {
		return nil, err
	}
	executions, err := e.executions(ctx, rr, key)
	if err != nil {
		return nil, err
	}
	return &Input{RR: rr, Key: key, Now: e.clock.Now(), Peers: peers, Executions: executions}, nil
}

// peers are the other requests with rr's signal and target. Requests for
// one target may live in any namespace (a Node's surely do).
func (e *Engine) peers(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) ([]v1alpha1.RemediationRequest, error) {
	rrs := &v1alpha1.RemediationRequestList{}
	if err := e.reader.List(ctx, rrs); err != nil {
		return nil, fmt.Errorf("listing remediation requests: %w", err)
	}
	var peers []v1alpha1.RemediationRequest
	for _, p := range rrs.Items {
		if p.UID == rr.UID || p.Spec.SignalFingerprint != rr.Spec.SignalFingerprint {
			continue
		}
		if k, err := target.ForRemediation(&p); err == nil && k == key {
			peers = append(peers, p)
		}
	}
	return peers, nil
}

// executions are the WFEs for the target in every namespace. The selector
// matches the string as written: ask for the canonical form, the request's
// spelling of the kind, and the API's.
func (e *Engine) executions(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) ([]v1alpha1.WorkflowExecution, error) {
	kinds := []string{key.Kind, rr.Spec.TargetResource.Kind}
	if e.mapper != nil {
		if gvk, err := e.mapper.KindFor(schema.GroupVersionResource{Resource: key.Kind}); err == nil {
			kinds = append(kinds, gvk.Kind)
		}
	}
	var executions []v1alpha1.WorkflowExecution
	seen := map[string]bool{}
	for _, kind := range kinds {
		s := target.Key{Namespace: key.Namespace, Kind: kind, Name: key.Name}.String()
		if seen[s] {
			continue
		}
		seen[s] = true
		wfes := &v1alpha1.WorkflowExecutionList{}
		if err := e.reader.List(ctx, wfes, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(TargetField, s)}); err != nil {
			return nil, fmt.Errorf("listing workflow executions for %s: %w", s, err)
		}
		executions = append(executions, wfes.Items...)
	}
	return executions, nil
}

// FailureStreak counts the failures in a row of rr's signal on its target,
// including rr itself when it has failed.
func (e *Engine) FailureStreak(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (int, error) {
	peers, err := e.peers(ctx, rr, key) // the WFEs play no part in a streak
	if err != nil {
		return 0, err
	}
	n, _ := failureStreak(append(peers, *rr))
	return n, nil
}

package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/target"
)

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

// input is everything the checks look at, read once per decision.
type input struct {
	RR  *v1alpha1.RemediationRequest
	Key target.Key
	Now time.Time
	// Peers are the other requests with the same signal and target.
	Peers []v1alpha1.RemediationRequest
	// Executions are the WFEs for the target, in every namespace.
	Executions []v1alpha1.WorkflowExecution
}

// check is one blocking rule; nil means it does not block.
type check func(in *input, o Options) *Block

// checks run in this order; the first that blocks decides.
var checks = []check{consecutiveFailures, duplicateInProgress, resourceBusy, recentlyRemediated, exponentialBackoff}

// Engine runs the checks on an object's requests and executions, found in
// an informer cache by target.HashIndex and confirmed live where the cache
// could mislead. The label only finds candidates: anyone who may edit a
// request or WFE may write it, so each candidate counts only if its own
// spec resolves to the object.
type Engine struct {
	cache    client.Reader
	live     client.Reader
	resolver *target.Resolver
	opts     Options
	clock    clock.PassiveClock
}

// NewEngine returns an Engine. cache must index RemediationRequests and
// WorkflowExecutions by target.HashIndex; live reads the API server;
// resolver identifies each candidate from its spec.
//
// A decision costs the object's entries in the cache, not its history in
// the API: no list is sent. What the cache shows ended has ended (a
// terminal phase is final); what it shows active is read live, because it
// may have ended since. What it has not seen yet is younger than the lock
// the caller holds, and so cannot be running.
func NewEngine(cache, live client.Reader, resolver *target.Resolver, opts Options, clk clock.PassiveClock) *Engine {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Engine{cache: cache, live: live, resolver: resolver, opts: opts.Defaults(), clock: clk}
}

// Options returns the engine's options with defaults applied.
func (e *Engine) Options() Options { return e.opts }

// Check returns the first block that applies to rr, or nil if it may run.
// The caller holds the object's lock: what decides is confirmed live.
func (e *Engine) Check(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (*Block, error) {
	in, err := e.read(ctx, rr, key, e.live)
	if err != nil {
		return nil, err
	}
	return decide(in, e.opts), nil
}

// Peek is Check on the cache alone, for a request that waits on another's
// lock or claim: it only says why the request waits, and decides nothing.
// What the cache shows active and has ended since brings the request back
// when the end reaches the cache (an event), so no live read is needed.
func (e *Engine) Peek(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (*Block, error) {
	in, err := e.read(ctx, rr, key, nil)
	if err != nil {
		return nil, err
	}
	return decide(in, e.opts), nil
}

// decide runs the checks on in.
func decide(in *input, o Options) *Block {
	for _, c := range checks {
		if b := c(in, o); b != nil {
			return b
		}
	}
	return nil
}

// read gathers the checks' input from the cache, confirming on live (nil:
// not at all) the candidates the cache shows active.
func (e *Engine) read(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, live client.Reader) (*input, error) {
	peers, err := e.peers(ctx, rr, key, live)
	if err != nil {
		return nil, err
	}
	executions, err := e.executions(ctx, key, live)
	if err != nil {
		return nil, err
	}
	return &input{RR: rr, Key: key, Now: e.clock.Now(), Peers: peers, Executions: executions}, nil
}

// peers are the other requests with rr's signal and target. Requests for
// one object may live in any namespace (a Node's surely do).
// Only an active peer that could block rr (executing, or older) is
// confirmed: a younger one waiting cannot, and would cost a read per
// duplicate.
func (e *Engine) peers(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key, live client.Reader) ([]v1alpha1.RemediationRequest, error) {
	rrs := &v1alpha1.RemediationRequestList{}
	if err := e.cache.List(ctx, rrs, client.MatchingFields{target.HashIndex: key.Hash()}); err != nil {
		return nil, fmt.Errorf("listing remediation requests of %s: %w", key, err)
	}
	var peers []v1alpha1.RemediationRequest
	for _, p := range rrs.Items {
		if p.UID == rr.UID || p.Spec.SignalFingerprint != rr.Spec.SignalFingerprint {
			continue
		}
		if ok, err := e.identifies(&p, key); !ok {
			if err != nil {
				return nil, fmt.Errorf("identifying remediation request %s/%s: %w", p.Namespace, p.Name, err)
			}
			continue
		}
		if live != nil && !p.Status.Phase.Terminal() && mayPrecede(&p, rr) {
			ok, err := confirm(ctx, live, &p)
			if err != nil || !ok {
				if err != nil {
					return nil, fmt.Errorf("reading remediation request %s/%s: %w", p.Namespace, p.Name, err)
				}
				continue
			}
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// executions are the WFEs of the object in every namespace, however their
// targets are spelled.
func (e *Engine) executions(ctx context.Context, key target.Key, live client.Reader) ([]v1alpha1.WorkflowExecution, error) {
	wfes := &v1alpha1.WorkflowExecutionList{}
	if err := e.cache.List(ctx, wfes, client.MatchingFields{target.HashIndex: key.Hash()}); err != nil {
		return nil, fmt.Errorf("listing workflow executions of %s: %w", key, err)
	}
	var out []v1alpha1.WorkflowExecution
	for _, w := range wfes.Items {
		got, err := e.resolver.ForExecution(&w)
		if ok, err := same(key, got, err); !ok {
			if err != nil {
				return nil, fmt.Errorf("identifying workflow execution %s/%s: %w", w.Namespace, w.Name, err)
			}
			continue
		}
		if live != nil && !w.Status.Phase.Terminal() {
			ok, err := confirm(ctx, live, &w)
			if err != nil {
				return nil, fmt.Errorf("reading workflow execution %s/%s: %w", w.Namespace, w.Name, err)
			}
			if !ok {
				continue
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// identifies reports whether p's own spec names key. A request that ran on
// a kind since uninstalled (discovery no longer knows it) is read as its
// key was then: a kind not built in, as spelled.
func (e *Engine) identifies(p *v1alpha1.RemediationRequest, key target.Key) (bool, error) {
	got, err := e.resolver.ForRemediation(p)
	if errors.Is(err, target.ErrInvalid) && Ran(p) && key.Group == target.AnyGroup {
		t := p.Spec.TargetResource
		return key == target.Key{Group: target.AnyGroup, Kind: t.Kind, Namespace: t.Namespace, Name: t.Name}, nil
	}
	return same(key, got, err)
}

// same reports whether a candidate found by key's label, resolved from its
// own spec to got (or err), is key's. One whose target is invalid names no
// object (it was refused); another error is returned, as it may pass.
func same(key, got target.Key, err error) (bool, error) {
	switch {
	case errors.Is(err, target.ErrInvalid):
		return false, nil
	case err != nil:
		return false, err
	}
	return got == key, nil
}

// confirm re-reads obj live in place. It reports false when obj is gone,
// or replaced by another object of the same name.
func confirm(ctx context.Context, live client.Reader, obj client.Object) (bool, error) {
	uid := obj.GetUID()
	switch err := live.Get(ctx, client.ObjectKeyFromObject(obj), obj); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return obj.GetUID() == uid, nil
}

// FailureStreak counts the failures in a row of rr's signal on its target,
// including rr itself when it has failed.
func (e *Engine) FailureStreak(ctx context.Context, rr *v1alpha1.RemediationRequest, key target.Key) (int, error) {
	peers, err := e.peers(ctx, rr, key, e.live) // the WFEs play no part in a streak
	if err != nil {
		return 0, err
	}
	n, _ := failureStreak(append(peers, *rr))
	return n, nil
}

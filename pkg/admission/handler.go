package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// Path is where the webhook server serves the Handler.
const Path = "/validate-workflowexecution"

// DefaultMaxAttempts bounds the inspect-decide-claim loop of one CREATE. Each
// lost compare-and-swap means another writer made progress on the target, so
// a handful of attempts is plenty; after that the CREATE is denied as
// retryable rather than admitted unchecked.
const DefaultMaxAttempts = 5

// EventRecorder records the Event of a denial. The events.k8s.io recorders
// of client-go and controller-runtime satisfy it.
type EventRecorder interface {
	AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any)
}

// Options configure a Handler.
type Options struct {
	// Lock inspects and claims target Leases. Its client must read live.
	Lock *lease.Lock
	// Resolver turns spec.targetResource into the object's key.
	Resolver *target.Resolver
	// Reader reads WorkflowExecutions. It must read live: a cache can miss
	// the WorkflowExecution another writer stored a moment ago.
	Reader client.Reader
	// Cache, optional, reads WorkflowExecutions from an informer indexed by
	// target.HashIndex: the defence-in-depth lookup of an object's other
	// WFEs then costs no API request unless one looks active. The Lock
	// should then have a cache of Leases too (lease.Options.Cache).
	Cache client.Reader
	// Recorder records an Event for every denial. Optional.
	Recorder EventRecorder
	// Clock must be the clock the Lock was built with: lock expiry and claim
	// grace are judged against it. Default: the real clock.
	Clock clock.PassiveClock
	// Trust says who may name objects outside their own namespace, and
	// whose lock tokens count.
	Trust Trust
	// Authorizer creates the SubjectAccessReviews of Trust.Verb.
	Authorizer Creator
	// DirectClaimsPerSecond and DirectClaimsBurst bound, per requester, the
	// claims of CREATEs not made by the orchestrator or a trusted
	// ServiceAccount. Defaults
	// DefaultDirectClaimsPerSecond and DefaultDirectClaimsBurst.
	DirectClaimsPerSecond float64
	DirectClaimsBurst     int
	// Kubernaut, optional, is kubernaut's RO lock, honoured beside ours.
	Kubernaut *KubernautLock
	// MaxAttempts bounds re-reads after a lost compare-and-swap. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// Enforcement: Enforce ("" too) refuses; Warn admits the warnable
	// refusals with a warning and records them.
	Enforcement Enforcement
	// Reports, optional, records every refusal Recorder does, durably.
	Reports Reporter
}

// Handler validates WorkflowExecution CREATEs. Other operations are not
// guarded: the CRD keeps the target immutable and a terminal phase final.
type Handler struct {
	lock        *lease.Lock
	resolver    *target.Resolver
	trust       Trust
	authorizer  Creator
	limiter     *claimLimiter
	reader      client.Reader
	cache       client.Reader
	recorder    EventRecorder
	clock       clock.PassiveClock
	maxAttempts int
	kubernaut   *KubernautLock
	enforcement Enforcement
	reports     Reporter
}

var _ cradmission.Handler = (*Handler)(nil)

// New returns a Handler. Lock, Resolver and Reader are required.
func New(opts Options) (*Handler, error) {
	if opts.Lock == nil || opts.Resolver == nil || opts.Reader == nil {
		return nil, errors.New("admission: lock, resolver and reader are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.DirectClaimsPerSecond <= 0 {
		opts.DirectClaimsPerSecond = DefaultDirectClaimsPerSecond
	}
	if opts.DirectClaimsBurst <= 0 {
		opts.DirectClaimsBurst = DefaultDirectClaimsBurst
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	enforcement, err := ParseEnforcement(string(opts.Enforcement))
	if err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	return &Handler{
		lock:        opts.Lock,
		resolver:    opts.Resolver,
		trust:       opts.Trust,
		authorizer:  opts.Authorizer,
		limiter:     newClaimLimiter(opts.DirectClaimsPerSecond, opts.DirectClaimsBurst),
		reader:      opts.Reader,
		cache:       opts.Cache,
		recorder:    opts.Recorder,
		clock:       opts.Clock,
		maxAttempts: opts.MaxAttempts,
		kubernaut:   opts.Kubernaut,
		enforcement: enforcement,
		reports:     opts.Reports,
	}, nil
}

// Lock is the Lock the Handler claims with.
func (h *Handler) Lock() *lease.Lock { return h.lock }

// Handle decides one admission request. It never panics on any input: a
// malformed object or target is answered with a 400 naming what is wrong.
func (h *Handler) Handle(ctx context.Context, req cradmission.Request) cradmission.Response {
	start := time.Now()
	v := h.decide(ctx, req)
	if h.enforcement == Warn && v.warnable() {
		v = v.warn() // nothing was written: a refusal never follows a claim
	}
	admissions.WithLabelValues(v.decision(), v.reason).Inc()
	admissionSeconds.WithLabelValues(v.decision()).Observe(time.Since(start).Seconds())

	switch {
	case v.code >= http.StatusInternalServerError:
		verdictLog(logf.FromContext(ctx), req, v).Error(errors.New(v.message), "Admission failed")
	case !v.allowed || v.warned:
		msg := "Admission denied"
		if v.warned {
			msg = "Admission would be denied (warn mode)"
		}
		verdictLog(logf.FromContext(ctx), req, v).Info(msg, "message", v.message, "dryRun", isDryRun(req))
		if !isDryRun(req) {
			h.recordEvent(v)
			h.report(req, v)
		}
	case req.Operation == admissionv1.Create:
		if log := logf.FromContext(ctx).V(1); log.Enabled() {
			verdictLog(log, req, v).Info("Admission allowed", "dryRun", isDryRun(req))
		}
	}
	return v.response()
}

// requestLog is the webhooks' LogConstructor: the logger as it is. The
// default adds the request's fields to a logger built for every request,
// which encodes them each time, twice, though an admission logs nothing;
// verdictLog adds them when a request does log.
func requestLog(base logr.Logger, _ *cradmission.Request) logr.Logger { return base }

// verdictLog is log with what a message about req and its verdict v says.
func verdictLog(log logr.Logger, req cradmission.Request, v verdict) logr.Logger {
	return log.WithValues("operation", req.Operation, "namespace", req.Namespace, "name", req.Name,
		"user", req.UserInfo.Username, "requestID", req.UID, "reason", v.reason, "target", v.target, "holder", v.holder)
}

func (h *Handler) decide(ctx context.Context, req cradmission.Request) verdict {
	switch req.Operation {
	case admissionv1.Create:
		return h.decideCreate(ctx, req)
	default:
		return verdict{allowed: true, reason: ReasonNotGuarded, message: "operation not guarded"}
	}
}

func isDryRun(req cradmission.Request) bool {
	return req.DryRun != nil && *req.DryRun
}

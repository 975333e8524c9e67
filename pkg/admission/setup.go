package admission

import (
	"context"
	"errors"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/recorder"
	claimkeeper "github.com/targetlock/targetlock/pkg/claims"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/policyreport"
	"github.com/targetlock/targetlock/pkg/target"
)

// The webhook's client-side rate limit (the command's --kube-api-qps and
// --kube-api-burst): it answers within the API server's webhook timeout,
// so its reads and claims must never queue behind a client-side limit; a
// burst of CREATEs on busy targets costs two live reads per refusal. The
// API server's priority and fairness still protects it.
const (
	DefaultKubeAPIQPS   = 1000
	DefaultKubeAPIBurst = 2000
)

// MinLeaseTime is the shortest lock duration and claim grace: Leases count
// whole seconds, so a shorter grace would expire every claim the moment it
// is written.
const MinLeaseTime = time.Second

// SetupOptions configure the webhook Setup assembles. The zero value of
// every optional field is its safe default (setDefaults).
type SetupOptions struct {
	// LeaseNamespace holds the target Leases (the install namespace); the
	// manager's cache must hold its Leases. Required.
	LeaseNamespace string
	// Identity names this replica in its Lease writes. Required.
	Identity string
	// LeaseDuration and ClaimGrace must match the orchestrator's (see
	// lease.Options); lease.DefaultDuration and lease.DefaultClaimGrace if
	// zero, at least MinLeaseTime.
	LeaseDuration time.Duration
	ClaimGrace    time.Duration
	// MaxAttempts bounds re-reads after a lost compare-and-swap;
	// DefaultMaxAttempts if zero.
	MaxAttempts int
	// Trust says who may name objects outside their own namespace, and
	// whose lock tokens count. The zero value trusts no one.
	Trust Trust
	// DirectClaimsPerSecond and DirectClaimsBurst bound, per requester (its
	// authenticated username), the claims of CREATEs not made by the
	// orchestrator or a trusted ServiceAccount;
	// DefaultDirectClaimsPerSecond and DefaultDirectClaimsBurst if zero.
	DirectClaimsPerSecond float64
	DirectClaimsBurst     int
	// KubernautLockNamespace, if set, holds kubernaut's RO lock Leases,
	// honoured beside targetlock's.
	KubernautLockNamespace string
	// DisableClaimRelease leaves the claims of ended or deleted
	// WorkflowExecutions to the orchestrator, which hands them over itself,
	// so the two do not race for every handoff. Off by default: without an
	// orchestrator nobody else releases them.
	DisableClaimRelease bool
	// Enforcement: Enforce (the default) or Warn (Options.Enforcement).
	Enforcement Enforcement
	// DisablePolicyReports writes no openreports.io Reports. Off by
	// default: each refusal is also a result in a Report in the
	// requester's namespace (pkg/policyreport), skipped while the Report
	// CRD is not installed.
	DisablePolicyReports bool

	// Clock judges lock expiry and claim grace; the real clock if nil.
	// Tests step a fake one.
	Clock clock.PassiveClock
	// SkipNameValidation lets several webhooks run in one process (tests).
	SkipNameValidation bool
}

// setDefaults fills every zero optional field with its default, here only.
func (o *SetupOptions) setDefaults() {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = lease.DefaultDuration
	}
	if o.ClaimGrace == 0 {
		o.ClaimGrace = lease.DefaultClaimGrace
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.DirectClaimsPerSecond == 0 {
		o.DirectClaimsPerSecond = DefaultDirectClaimsPerSecond
	}
	if o.DirectClaimsBurst == 0 {
		o.DirectClaimsBurst = DefaultDirectClaimsBurst
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Enforcement == "" {
		o.Enforcement = Enforce
	}
}

// Validate reports options no webhook can run with. Setup calls it after
// filling the defaults; a command calls it first, on what its flags say,
// where a zero is no default.
func (o SetupOptions) Validate() error {
	var errs []error
	if o.LeaseNamespace == "" || o.Identity == "" {
		errs = append(errs, errors.New("the lease namespace and the identity are required"))
	}
	if o.ClaimGrace < MinLeaseTime || o.LeaseDuration < MinLeaseTime {
		errs = append(errs, errors.New("the claim grace and the lease duration must be at least 1s"))
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, errors.New("max attempts must be at least 1"))
	}
	if _, err := ParseEnforcement(string(o.Enforcement)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, o.Trust.Validate())
	return errors.Join(errs...)
}

// Webhook is what Setup assembled, for tests that call the handlers
// directly.
type Webhook struct {
	Handler  *Handler
	Resolver *target.Resolver
}

// Setup adds the webhook to mgr: the validating Handler at Path and the
// labeler at LabelPath on mgr's webhook server, the cache index they read,
// the claims keeper, the watch that refreshes discovery when APIs change,
// the Event recorder, and a readiness check that passes once the server
// serves its certificate. mgr's scheme must hold the guarded
// WorkflowExecution, and its cache the Leases of opts.LeaseNamespace.
func Setup(ctx context.Context, mgr ctrl.Manager, opts SetupOptions) (*Webhook, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// A decision reads the cache first and proves it by a compare-and-swap
	// on the Lease; whatever is not proven that way is read live.
	live, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, err
	}
	lock, err := lease.New(live, lease.Options{
		Namespace: opts.LeaseNamespace, Identity: opts.Identity,
		Duration: opts.LeaseDuration, ClaimGrace: opts.ClaimGrace, Clock: opts.Clock,
		Cache: mgr.GetCache(),
	})
	if err != nil {
		return nil, err
	}
	resolver, err := newResolver(ctx, mgr, opts.Clock)
	if err != nil {
		return nil, err
	}
	h, err := newHandler(mgr, live, lock, resolver, opts)
	if err != nil {
		return nil, err
	}
	if err := register(ctx, mgr, h, lock, resolver, opts); err != nil {
		return nil, err
	}
	return &Webhook{Handler: h, Resolver: resolver}, nil
}

// newResolver resolves targets by discovery, refreshed when a CRD or an
// APIService changes.
func newResolver(ctx context.Context, mgr ctrl.Manager, clk clock.PassiveClock) (*target.Resolver, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	resolver := target.NewResolver(dc, clk)
	return resolver, target.WatchAPIChanges(ctx, mgr.GetConfig(), resolver)
}

func newHandler(mgr ctrl.Manager, live client.Client, lock *lease.Lock, resolver *target.Resolver, opts SetupOptions) (*Handler, error) {
	events, err := recorder.ForManager(mgr, ReportingController)
	if err != nil {
		return nil, err
	}
	var kubernaut *KubernautLock
	if opts.KubernautLockNamespace != "" {
		kubernaut = &KubernautLock{Reader: live, Namespace: opts.KubernautLockNamespace}
	}
	var reports Reporter
	if !opts.DisablePolicyReports {
		w := policyreport.NewWriter(live, opts.Clock)
		if err := mgr.Add(w); err != nil {
			return nil, err
		}
		reports = w
	}
	return New(Options{
		Lock: lock, Resolver: resolver, Reader: live, Cache: mgr.GetCache(), Clock: opts.Clock,
		MaxAttempts: opts.MaxAttempts, Trust: opts.Trust, Authorizer: live,
		DirectClaimsPerSecond: opts.DirectClaimsPerSecond, DirectClaimsBurst: opts.DirectClaimsBurst,
		Recorder: events, Kubernaut: kubernaut, Enforcement: opts.Enforcement, Reports: reports,
	})
}

// register adds to mgr what serves and backs h: its index, the claims
// keeper, the Lease informer, both paths and the server's readiness.
func register(ctx context.Context, mgr ctrl.Manager, h *Handler, lock *lease.Lock, resolver *target.Resolver, opts SetupOptions) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.WorkflowExecution{}, IdentityIndex, IndexIdentity()); err != nil {
		return err
	}
	if _, err := claimkeeper.Register(ctx, mgr, claimkeeper.Options{
		Lock: lock, Resolver: resolver, Release: !opts.DisableClaimRelease, Clock: opts.Clock,
		SkipNameValidation: opts.SkipNameValidation,
	}); err != nil {
		return err
	}
	// The informers start with the manager, before the first admission.
	if _, err := mgr.GetCache().GetInformer(ctx, &coordinationv1.Lease{}); err != nil {
		return err
	}
	// GetWebhookServer adds the server to the manager's runnables too.
	server := mgr.GetWebhookServer()
	server.Register(Path, &cradmission.Webhook{Handler: h, LogConstructor: requestLog})
	server.Register(LabelPath, &cradmission.Webhook{Handler: NewLabeler(resolver), LogConstructor: requestLog})
	// The webhook server starts only once it has loaded the certificate,
	// and this check completes a TLS handshake with it.
	return mgr.AddReadyzCheck("webhook", server.StartedChecker())
}

package app

import (
	"context"
	"flag"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/command"
	"github.com/targetlock/targetlock/internal/kubeflags"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/admission"
)

// serveConfig is what the flags say: the server's options and the
// webhook's (admission.SetupOptions), and how to build the manager.
type serveConfig struct {
	kube           kubeflags.Flags
	endpoints      kubeflags.Endpoints
	lock           kubeflags.Lock
	server         admission.ServerOptions
	hook           admission.SetupOptions
	executionGroup string
	releaseClaims  bool
	enforcement    string
	policyReports  bool
	pprof          string
	zap            zap.Options
}

func serveFlags(out io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fs := command.NewFlagSet("webhook", out, fmt.Sprintf(`Usage:
  webhook [serve] [flags]     serve the WorkflowExecution admission webhooks
  webhook denials [flags]     list recently denied admissions (see webhook denials --help)
  webhook certs verify [flags] check the webhook's certificates as the API server sees them (CI)

The webhook admits a WorkflowExecution CREATE only by claiming its target's
Lease (one compare-and-swap), so at most one is admitted per target; a CREATE
carrying an orchestrator's lock token only while that lock is still held.
A mutating path, %s, first labels every WorkflowExecution with the
identity of its target object (%s), however the target is spelled.
It serves TLS (1.2 or later) at the path %s, reloading the
certificate when the files in --cert-dir change; /readyz passes only once
the certificate is loaded and served. With --client-ca-file, only callers
presenting a client certificate signed by those CAs (the API server) are
answered.

Flags:
`, admission.LabelPath, v1alpha1.TargetHashLabel, admission.Path))
	c.kube = kubeflags.Flags{QPS: admission.DefaultKubeAPIQPS, Burst: admission.DefaultKubeAPIBurst}
	c.kube.Bind(fs)
	c.endpoints.Bind(fs)
	c.lock.Bind(fs)
	bindServer(fs, &c.server)
	h := &c.hook
	fs.IntVar(&h.MaxAttempts, "max-attempts", admission.DefaultMaxAttempts, "attempts per CREATE when the target's Lease changes under the webhook; then the CREATE is denied as retryable")
	fs.StringVar(&h.Trust.Orchestrator, "orchestrator-user", "", "username of the orchestrator's ServiceAccount (system:serviceaccount:<ns>:<name>): the only requester whose lock tokens are accepted, and trusted to name any object, when the API server vouches for it (its ServiceAccount groups); empty: no lock token is accepted")
	kubeflags.StringList(fs, &h.Trust.Namespaces, "trusted-namespaces", "comma-separated namespaces whose WorkflowExecutions may name objects in other namespaces and cluster-scoped ones (\"*\": every namespace, for single-tenant clusters); by default a WorkflowExecution may name only objects in its own namespace")
	kubeflags.StringList(fs, &h.Trust.ServiceAccounts, "trusted-service-accounts", "comma-separated ServiceAccounts (namespace/name) trusted to name any object, when the API server vouches for them (their ServiceAccount groups)")
	fs.Float64Var(&h.DirectClaimsPerSecond, "direct-claims-per-second", admission.DefaultDirectClaimsPerSecond, "claims per second, per requester (authenticated username), that CREATEs not made by the orchestrator or a trusted ServiceAccount may make (a claim whose CREATE a later admission step refuses stands for --claim-grace)")
	fs.IntVar(&h.DirectClaimsBurst, "direct-claims-burst", admission.DefaultDirectClaimsBurst, "burst of --direct-claims-per-second")
	fs.StringVar(&c.executionGroup, "execution-group", v1alpha1.GroupVersion.Group, "API group of the guarded WorkflowExecutions (version v1alpha1): targetlock.io for targetlock's own orchestrator, kubernaut.ai to guard a kubernaut installation")
	fs.StringVar(&h.KubernautLockNamespace, "kubernaut-lock-namespace", "", "namespace of kubernaut's RemediationOrchestrator lock Leases (ro-lock-*), honoured beside targetlock's own: while one is live only its holder pod may create a WorkflowExecution for its target; empty: not read")
	// On by default as SetupOptions.DisableClaimRelease is off by default.
	fs.BoolVar(&c.releaseClaims, "release-claims", true, "release a claim as soon as its WorkflowExecution ends or is deleted (off where targetlock's orchestrator hands claims over itself); active WorkflowExecutions without a claim are claimed, and stale Leases swept, either way")
	fs.StringVar(&c.enforcement, "enforcement", string(admission.Enforce), "enforce: refuse a second WorkflowExecution for a busy target; warn: admit the CREATEs refused for a busy or contended target or by the access rules (LockHeld, ResourceBusy, ClaimPending, Contended, NotPermitted, RateLimited) with a warning to the client, writing no claim for them, and record each as would-refuse (Event reason WouldRefuse, metric decision warned), to roll out on an existing cluster; malformed objects, lock-token (fencing) refusals and API errors are refused either way")
	fs.BoolVar(&c.policyReports, "policy-reports", true, "also record each refusal (and each warn-mode would-refuse) as a result in the openreports.io/v1alpha1 Report targetlock-admission of the WorkflowExecution's namespace, off the admission path and bounded (needs RBAC on reports.openreports.io; skipped, logged once, while that CRD is not installed)")
	fs.StringVar(&h.Trust.Verb, "authorize-verb", "", "if set (patch, update or delete: a verb that means write access), anyone else may name an object they are allowed this verb on, by a SubjectAccessReview (needs RBAC to create subjectaccessreviews); get, list, watch are refused")
	fs.StringVar(&c.pprof, "pprof-bind-address", "", "address of net/http/pprof's /debug/pprof/ endpoints, to profile the webhook (unauthenticated: bind it to loopback); empty: off")
	c.zap.Development = false // JSON logs
	c.zap.BindFlags(fs)
	return fs, c
}

// bindServer registers the flags of the TLS server.
func bindServer(fs *flag.FlagSet, o *admission.ServerOptions) {
	fs.StringVar(&o.Host, "host", "", "address the webhook server listens on (default: all)")
	fs.IntVar(&o.Port, "port", admission.DefaultPort, "port of the webhook server (HTTPS)")
	fs.StringVar(&o.CertDir, "cert-dir", admission.DefaultCertDir, "directory holding the serving certificate and key; watched, so a renewed certificate is used without a restart")
	fs.StringVar(&o.CertName, "cert-name", admission.DefaultCertName, "file name of the serving certificate in --cert-dir")
	fs.StringVar(&o.KeyName, "key-name", admission.DefaultKeyName, "file name of the serving key in --cert-dir")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "serve HTTP/2 as well as HTTP/1.1 (off: HTTP/2 rapid-reset and stream-exhaustion attacks)")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", "", "PEM file of the CA(s) that sign the API server's client certificate (its AdmissionConfiguration kubeConfigFile): every caller must present a certificate they signed; re-read when it changes. Empty: callers are not authenticated, and anyone who reaches the port can POST an AdmissionReview")
}

// complete checks the flags and turns them into the webhook's options.
// Zero is no default here: --claim-grace=0 or --max-attempts=0 is refused.
func (c *serveConfig) complete(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if err := c.lock.Complete(); err != nil {
		return err
	}
	h := &c.hook
	h.LeaseNamespace, h.Identity = c.lock.Namespace, c.lock.Identity
	h.LeaseDuration, h.ClaimGrace = c.lock.Duration, c.lock.ClaimGrace
	h.DisableClaimRelease = !c.releaseClaims
	h.DisablePolicyReports = !c.policyReports
	e, err := admission.ParseEnforcement(c.enforcement)
	if err != nil || c.enforcement == "" {
		return fmt.Errorf("--enforcement %q: want %s or %s", c.enforcement, admission.Enforce, admission.Warn)
	}
	h.Enforcement = e
	// One server per process in a pod; tests run several in one.
	h.SkipNameValidation = true
	if err := h.Trust.Validate(); err != nil {
		return fmt.Errorf("--authorize-verb: %w", err)
	}
	if err := h.Validate(); err != nil {
		return fmt.Errorf("--lease-namespace, --identity, --lease-duration, --claim-grace, --max-attempts: %w", err)
	}
	if errs := validation.IsDNS1123Subdomain(c.executionGroup); len(errs) > 0 {
		return fmt.Errorf("--execution-group %q: %s", c.executionGroup, errs[0])
	}
	return nil
}

func runServe(ctx context.Context, args []string, out io.Writer) error {
	fs, c := serveFlags(out)
	if help, err := command.Parse(fs, args); help || err != nil {
		return err
	}
	if err := c.complete(fs); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&c.zap)))
	// The latency of the webhook's own API requests, its Lease writes above
	// all: the one part of an admission the webhook cannot do without.
	crmetrics.RegisterRESTClientMetricsWithOptions(crmetrics.RESTClientMetricsOptions{DurationBuckets: admission.LatencyBuckets},
		crmetrics.MetricRequestLatency)
	restCfg, err := c.kube.Config()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	// Uncompressed: the API server would gzip each watch event of the
	// webhook's informers (Leases, WorkflowExecutions: an event per
	// admission, each flushed alone) and the webhook gunzip it, CPU both
	// spend beside the admissions for a few hundred bytes on a cluster's
	// network.
	restCfg.DisableCompression = true
	scheme, err := newScheme(c.executionGroup)
	if err != nil {
		return err
	}
	mgr, err := manager.New(restCfg, manager.Options{
		Scheme: scheme, LeaseNamespace: c.lock.Namespace, Endpoints: c.endpoints,
		WebhookServer: admission.NewServer(c.server), PprofBindAddress: c.pprof,
	})
	if err != nil {
		return err
	}
	if _, err := admission.Setup(ctx, mgr, c.hook); err != nil {
		return err
	}
	log := ctrl.Log.WithName("webhook")
	manager.WarnSharedNamespace(ctx, mgr.GetAPIReader(), c.lock.Namespace, log)
	log.Info("Starting webhook", "identity", c.lock.Identity, "leaseNamespace", c.lock.Namespace,
		"executionGroup", c.executionGroup, "kubernautLockNamespace", c.hook.KubernautLockNamespace,
		"path", admission.Path, "port", c.server.Port, "certDir", c.server.CertDir, "claimGrace", c.lock.ClaimGrace,
		"clientCAFile", c.server.ClientCAFile, "enforcement", c.hook.Enforcement)
	if c.hook.Enforcement == admission.Warn {
		log.Info("Warn mode: CREATEs for busy targets are admitted with a warning and recorded as WouldRefuse, not refused; switch with --enforcement=enforce")
	}
	if c.server.ClientCAFile == "" {
		log.Info("Callers are not authenticated: anyone who reaches the webhook port can POST an AdmissionReview; set --client-ca-file (docs/operations.md)")
	}
	return mgr.Start(ctx)
}

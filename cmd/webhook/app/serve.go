package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/command"
	"github.com/targetlock/targetlock/internal/kubeflags"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/internal/recorder"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/claims"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

type serveConfig struct {
	kube        kubeflags.Flags
	endpoints   kubeflags.Endpoints
	host        string
	port        int
	certDir     string
	certName    string
	keyName     string
	enableHTTP2 bool
	lock        kubeflags.Lock
	maxAttempts int
	trust       admission.Trust

	executionGroup string
	kubernautLocks string
	releaseClaims  bool

	directClaimsPerSecond float64
	directClaimsBurst     int
	zap                   zap.Options
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
the certificate is loaded and served.

Flags:
`, admission.LabelPath, v1alpha1.TargetHashLabel, admission.Path))
	// The webhook answers within the API server's webhook timeout, so its
	// reads and claims must never queue behind a client-side limit: a burst
	// of CREATEs on busy targets costs two live reads per refusal.
	c.kube = kubeflags.Flags{QPS: 1000, Burst: 2000}
	c.kube.Bind(fs)
	c.endpoints.Bind(fs)
	c.lock.Bind(fs)
	fs.StringVar(&c.host, "host", "", "address the webhook server listens on (default: all)")
	fs.IntVar(&c.port, "port", webhook.DefaultPort, "port of the webhook server (HTTPS)")
	fs.StringVar(&c.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding the serving certificate and key; watched, so a renewed certificate is used without a restart")
	fs.StringVar(&c.certName, "cert-name", "tls.crt", "file name of the serving certificate in --cert-dir")
	fs.StringVar(&c.keyName, "key-name", "tls.key", "file name of the serving key in --cert-dir")
	fs.BoolVar(&c.enableHTTP2, "enable-http2", false, "serve HTTP/2 as well as HTTP/1.1 (off: HTTP/2 rapid-reset and stream-exhaustion attacks)")
	fs.IntVar(&c.maxAttempts, "max-attempts", admission.DefaultMaxAttempts, "attempts per CREATE when the target's Lease changes under the webhook; then the CREATE is denied as retryable")
	fs.StringVar(&c.trust.Orchestrator, "orchestrator-user", "", "username of the orchestrator's ServiceAccount (system:serviceaccount:<ns>:<name>): the only requester whose lock tokens are accepted, and trusted to name any object; empty: no lock token is accepted")
	kubeflags.StringList(fs, &c.trust.Namespaces, "trusted-namespaces", "comma-separated namespaces whose WorkflowExecutions may name objects in other namespaces and cluster-scoped ones (\"*\": every namespace, for single-tenant clusters); by default a WorkflowExecution may name only objects in its own namespace")
	kubeflags.StringList(fs, &c.trust.ServiceAccounts, "trusted-service-accounts", "comma-separated ServiceAccounts (namespace/name) trusted to name any object")
	fs.Float64Var(&c.directClaimsPerSecond, "direct-claims-per-second", admission.DefaultDirectClaimsPerSecond, "claims per second, per namespace, that CREATEs not made by the orchestrator may make (a claim whose CREATE a later admission step refuses stands for --claim-grace)")
	fs.IntVar(&c.directClaimsBurst, "direct-claims-burst", admission.DefaultDirectClaimsBurst, "burst of --direct-claims-per-second")
	fs.StringVar(&c.executionGroup, "execution-group", v1alpha1.GroupVersion.Group, "API group of the guarded WorkflowExecutions (version v1alpha1): targetlock.io for targetlock's own orchestrator, kubernaut.ai to guard a kubernaut installation")
	fs.StringVar(&c.kubernautLocks, "kubernaut-lock-namespace", "", "namespace of kubernaut's RemediationOrchestrator lock Leases (ro-lock-*), honoured beside targetlock's own: while one is live only its holder pod may create a WorkflowExecution for its target; empty: not read")
	fs.BoolVar(&c.releaseClaims, "release-claims", true, "release a claim as soon as its WorkflowExecution ends or is deleted (off where targetlock's orchestrator hands claims over itself); active WorkflowExecutions without a claim are claimed, and stale Leases swept, either way")
	fs.StringVar(&c.trust.Verb, "authorize-verb", "", "if set (e.g. patch), anyone else may name an object they are allowed this verb on, by a SubjectAccessReview (needs RBAC to create subjectaccessreviews)")
	c.zap.Development = false // JSON logs
	c.zap.BindFlags(fs)
	return fs, c
}

func runServe(ctx context.Context, args []string, out io.Writer) error {
	fs, c := serveFlags(out)
	if help, err := command.Parse(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if err := c.lock.Complete(); err != nil {
		return err
	}
	// Leases count whole seconds: a shorter grace would expire every claim
	// the moment it is written.
	if c.lock.ClaimGrace < time.Second || c.lock.Duration < time.Second {
		return errors.New("--claim-grace and --lease-duration must be at least 1s")
	}
	if c.maxAttempts < 1 {
		return errors.New("--max-attempts must be at least 1")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&c.zap)))
	log := ctrl.Log.WithName("webhook")

	restCfg, err := c.kube.Config()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	if errs := validation.IsDNS1123Subdomain(c.executionGroup); len(errs) > 0 {
		return fmt.Errorf("--execution-group %q: %s", c.executionGroup, errs[0])
	}
	scheme, err := newScheme(c.executionGroup)
	if err != nil {
		return err
	}
	tlsOpts := []func(*tls.Config){func(cfg *tls.Config) { cfg.MinVersion = tls.VersionTLS12 }}
	if !c.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(cfg *tls.Config) { cfg.NextProtos = []string{"http/1.1"} })
	}
	server := webhook.NewServer(webhook.Options{
		Host: c.host, Port: c.port,
		CertDir: c.certDir, CertName: c.certName, KeyName: c.keyName,
		TLSOpts: tlsOpts,
	})
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  manager.CacheOptions(c.lock.Namespace),
		Metrics:                metricsserver.Options{BindAddress: c.endpoints.Metrics},
		HealthProbeBindAddress: c.endpoints.Probe,
		WebhookServer:          server,
		LeaderElection:         false, // every replica serves; the Leases coordinate
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	// A decision reads the cache first and proves it by a compare-and-swap
	// on the Lease; whatever is not proven that way is read live.
	live, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	clk := clock.RealClock{}
	lock, err := lease.New(live, lease.Options{
		Namespace: c.lock.Namespace, Identity: c.lock.Identity,
		Duration: c.lock.Duration, ClaimGrace: c.lock.ClaimGrace, Clock: clk,
		Cache: mgr.GetCache(),
	})
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating discovery client: %w", err)
	}
	resolver := target.NewResolver(dc, clk)
	if err := target.WatchAPIChanges(ctx, restCfg, resolver); err != nil {
		return err
	}
	events, err := recorder.ForManager(mgr, ControllerName)
	if err != nil {
		return err
	}
	h, err := admission.New(admission.Options{
		Lock: lock, Resolver: resolver, Reader: live, Cache: mgr.GetCache(), Clock: clk, MaxAttempts: c.maxAttempts,
		Trust: c.trust, Authorizer: live,
		DirectClaimsPerSecond: c.directClaimsPerSecond, DirectClaimsBurst: c.directClaimsBurst,
		Recorder: events, Kubernaut: kubernautLock(live, c.kubernautLocks),
	})
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.WorkflowExecution{}, admission.IdentityIndex, admission.IndexIdentity()); err != nil {
		return err
	}
	if _, err := claims.Register(ctx, mgr, claims.Options{Lock: lock, Resolver: resolver, Release: c.releaseClaims, Clock: clk,
		// One server per process in a pod; tests run several in one.
		SkipNameValidation: true}); err != nil {
		return err
	}
	// The informers start with the manager, before the first admission.
	if _, err := mgr.GetCache().GetInformer(ctx, &coordinationv1.Lease{}); err != nil {
		return err
	}
	// GetWebhookServer, not the server variable: it also adds the server
	// to the manager's runnables.
	mgr.GetWebhookServer().Register(admission.Path, &cradmission.Webhook{Handler: h})
	mgr.GetWebhookServer().Register(admission.LabelPath, &cradmission.Webhook{Handler: admission.NewLabeler(resolver)})
	if err := manager.AddChecks(mgr); err != nil {
		return err
	}
	// The webhook server starts only once it has loaded the certificate,
	// and this check completes a TLS handshake with it.
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return err
	}
	log.Info("Starting webhook", "identity", c.lock.Identity, "leaseNamespace", c.lock.Namespace, "executionGroup", c.executionGroup,
		"kubernautLockNamespace", c.kubernautLocks,
		"path", admission.Path, "port", c.port, "certDir", c.certDir, "claimGrace", c.lock.ClaimGrace)
	return mgr.Start(ctx)
}

// kubernautLock is kubernaut RO's lock in namespace, or nil when not read.
func kubernautLock(live client.Reader, namespace string) *admission.KubernautLock {
	if namespace == "" {
		return nil
	}
	return &admission.KubernautLock{Reader: live, Namespace: namespace}
}

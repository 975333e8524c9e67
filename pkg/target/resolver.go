package target

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Discovery lists the resources the API serves, one version per group, in
// the API server's group-priority order. A client-go discovery client
// satisfies it; Resources is a fixed one.
type Discovery interface {
	ServerPreferredResources() ([]*metav1.APIResourceList, error)
}

// Resources is a fixed Discovery, for tests and tools without an API server.
// Its order stands for the API server's group priority.
type Resources []*metav1.APIResourceList

func (r Resources) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return r, nil }

// MinRefresh bounds how often a spelling discovery does not know re-reads
// discovery: a CRD installed a moment ago is found within it, and a flood of
// unknown kinds costs at most one discovery per interval.
const MinRefresh = 10 * time.Second

// MaxAge bounds the age of a Resolver's table: older, it is re-read on the
// next lookup even for a known spelling, so replicas that missed a CRD or
// APIService change (no watcher, a dropped event) agree again within it.
const MaxAge = time.Minute

// Option configures a Resolver.
type Option func(*Resolver)

// WithMaxAge replaces MaxAge; d <= 0 keeps MaxAge.
func WithMaxAge(d time.Duration) Option {
	return func(r *Resolver) {
		if d > 0 {
			r.maxAge = d
		}
	}
}

// Resolver maps every spelling of a kind to its key's group and Kind:
// plural, singular and short names, the Kind itself, in any case, with an
// optional ".group". It reads discovery on first use, after Invalidate,
// after MaxAge, and on a miss (at most every MinRefresh). Safe for
// concurrent use.
type Resolver struct {
	discovery Discovery
	clock     clock.PassiveClock
	maxAge    time.Duration

	// stale is set by Invalidate outside mu, so that an informer's handler
	// never waits on a discovery read in progress; the load after it clears
	// it before reading, so a change seen mid-read is read again.
	stale atomic.Bool

	mu     sync.Mutex
	table  *table
	loaded time.Time
}

// NewResolver returns a Resolver reading d. clk may be nil (the real clock).
func NewResolver(d Discovery, clk clock.PassiveClock, opts ...Option) *Resolver {
	if clk == nil {
		clk = clock.RealClock{}
	}
	r := &Resolver{discovery: d, clock: clk, maxAge: MaxAge}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Invalidate makes the next lookup re-read discovery: a CRD or APIService
// changed, and a spelling known before may now mean another kind (or
// scope), which the other replicas will see too.
func (r *Resolver) Invalidate() { r.stale.Store(true) }

// Resolve returns the key of the object a kind spelling, namespace and name
// denote in this cluster. A cluster-scoped kind drops the namespace (alert
// pipelines often fill one in for a Node); a namespaced kind without one is
// refused rather than guessed. Errors wrapping ErrInvalid are final; others
// are transient.
func (r *Resolver) Resolve(kindSpelling, namespace, name string) (Key, error) {
	shown := Key{Kind: kindSpelling, Namespace: namespace, Name: name}.String()
	if err := validate(kindSpelling, namespace, name); err != nil {
		return Key{}, invalid(shown, err)
	}
	k, err := r.kind(kindSpelling)
	if err != nil {
		var bad badKind
		if errors.As(err, &bad) {
			return Key{}, invalid(shown, bad.error)
		}
		return Key{}, err
	}
	key := Key{Group: k.gk.Group, Kind: k.gk.Kind, Name: name}
	switch k.scope {
	case namespaced:
		if namespace == "" {
			return Key{}, invalid(shown, fmt.Errorf("%s is namespaced: name its namespace", display(k.gk)))
		}
		key.Namespace = namespace
	case mixed:
		key.Namespace = namespace
	case clusterScoped: // the namespace is dropped
	}
	return key, nil
}

// Parse resolves a target string, as carried by spec.targetResource, in
// this cluster; followed by "@clusterID" (a remote key's String form), it
// is resolved as ForTarget does for that cluster.
func (r *Resolver) Parse(s string) (Key, error) {
	if local, cluster, remote := strings.Cut(s, "@"); remote {
		return r.ForTarget(cluster, local)
	}
	return r.local(s)
}

func (r *Resolver) local(s string) (Key, error) {
	ns, kind, name, err := split(s)
	if err != nil {
		return Key{}, err
	}
	return r.Resolve(kind, ns, name)
}

// ForTarget returns the key of target (spec.targetResource) in the cluster
// clusterID names, or in this one for "". A remote target is keyed without
// this cluster's discovery, which knows nothing of that cluster's kinds: its
// Kind and group lower-cased as written, three parts namespaced, two
// cluster-scoped.
func (r *Resolver) ForTarget(clusterID, target string) (Key, error) {
	if clusterID == "" {
		if strings.Contains(target, "@") {
			return Key{}, invalid(target, fmt.Errorf(`"@": the cluster belongs in clusterID`))
		}
		return r.local(target)
	}
	shown := target + "@" + clusterID
	if err := validateCluster(clusterID); err != nil {
		return Key{}, invalid(shown, err)
	}
	ns, kind, name, err := split(target)
	if err != nil {
		return Key{}, err
	}
	k, group, _ := strings.Cut(strings.ToLower(kind), ".")
	if group == AnyGroup {
		return Key{}, invalid(shown, fmt.Errorf("a remote cluster's kind takes its group as written, not %q", "."+AnyGroup))
	}
	key := Key{Group: group, Kind: k, Namespace: ns, Name: name, Cluster: clusterID}
	// A built-in kind is the same on every cluster: it resolves through this
	// cluster's table, any spelling, with its scope (a Node named with a
	// namespace is still the one Node).
	res, err := r.kind(kind)
	var bad badKind
	switch {
	case errors.As(err, &bad):
		return key, nil // not served here: maybe there, as written
	case err != nil:
		return Key{}, err
	case res.gk.Group == AnyGroup:
		return key, nil // a CRD here; the remote cluster's may differ
	}
	key.Group, key.Kind = res.gk.Group, strings.ToLower(res.gk.Kind)
	switch res.scope {
	case clusterScoped:
		key.Namespace = ""
	case namespaced:
		if ns == "" {
			return Key{}, invalid(shown, fmt.Errorf("%s is namespaced: name its namespace", display(res.gk)))
		}
	case mixed:
	}
	return key, nil
}

// ForRemediation returns the key of a RemediationRequest's target, in this
// cluster. Its apiVersion, when set, picks the group of an ambiguous Kind.
func (r *Resolver) ForRemediation(rr *v1alpha1.RemediationRequest) (Key, error) {
	t := rr.Spec.TargetResource
	kind := t.Kind
	if gv, err := schema.ParseGroupVersion(t.APIVersion); err == nil && gv.Group != "" && !strings.Contains(kind, ".") {
		kind += "." + gv.Group
	}
	return r.Resolve(kind, t.Namespace, t.Name)
}

// ForExecution returns the key of a WorkflowExecution's target, in the
// cluster its spec.clusterID names.
func (r *Resolver) ForExecution(wfe *v1alpha1.WorkflowExecution) (Key, error) {
	return r.ForTarget(wfe.Spec.ClusterID, wfe.Spec.TargetResource)
}

// Spelling is how key is written into a WorkflowExecution's
// spec.targetResource (its cluster goes to spec.clusterID): the plain
// "namespace/Kind/name" that kubernaut's executors read, with ".group" only
// where the Kind alone means another kind here: a built-in kind that is not
// the Kind's first (Event.events.k8s.io), or a kind that is not built in
// whose Kind a built-in one shadows (Node.longhorn.io). Resolving the
// spelling gives key back.
func (r *Resolver) Spelling(key Key) string {
	bare := Key{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}.String()
	if key.Cluster != "" {
		return Key{Group: key.Group, Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}.String()
	}
	k, err := r.kind(key.Kind)
	if err == nil && k.gk == key.GroupKind() {
		return bare
	}
	if key.Group != AnyGroup {
		return key.String()
	}
	// Any group of the class gives the class back; without one (the kind is
	// gone) the bare Kind is the best guess.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.table != nil {
		if c := r.table.classes[strings.ToLower(key.Kind)]; c != nil && len(c.groups) > 0 {
			return Key{Kind: key.Kind + "." + c.groups[0], Namespace: key.Namespace, Name: key.Name}.String()
		}
	}
	return bare
}

// Resource is the plural resource name of key's kind ("deployments"), as
// authorization checks name it; "" if discovery does not know the kind, for
// a kind that is not built in (its key names no group) and for a remote
// cluster's.
func (r *Resolver) Resource(key Key) string {
	if key.Cluster != "" || key.Group == AnyGroup {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.table == nil {
		return ""
	}
	return r.table.resources[key.GroupKind()]
}

// kind looks a spelling up, re-reading discovery first if the table is
// stale, and once on a miss.
func (r *Resolver) kind(spelling string) (resolved, error) {
	name, group, _ := strings.Cut(strings.ToLower(spelling), ".")
	r.mu.Lock()
	defer r.mu.Unlock()
	invalidated := r.stale.Swap(false)
	if r.table == nil || invalidated || r.clock.Since(r.loaded) >= r.maxAge ||
		(len(r.table.candidates(name, group)) == 0 && r.clock.Since(r.loaded) >= MinRefresh) {
		if err := r.load(); err != nil {
			if invalidated {
				r.stale.Store(true) // the table is still the stale one
			}
			// A refresh that fails keeps the table it meant to refresh: a
			// discovery blip must not fail every lookup. A miss then stays
			// transient (the kind may be one the refresh would have found).
			if r.table == nil {
				return resolved{}, err
			}
			if k, lerr := r.table.lookup(spelling, name, group); lerr == nil {
				return k, nil
			}
			return resolved{}, err
		}
	}
	return r.table.lookup(spelling, name, group)
}

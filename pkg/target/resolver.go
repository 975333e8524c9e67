package target

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/clock"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Discovery lists the resources the API serves, one version per group.
// A client-go discovery client satisfies it; Resources is a fixed one.
type Discovery interface {
	ServerPreferredResources() ([]*metav1.APIResourceList, error)
}

// Resources is a fixed Discovery, for tests and tools without an API server.
type Resources []*metav1.APIResourceList

func (r Resources) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return r, nil }

// MinRefresh bounds how often a spelling discovery does not know re-reads
// discovery: a CRD installed a moment ago is found within it, and a flood of
// unknown kinds costs at most one discovery per interval.
const MinRefresh = 10 * time.Second

// badKind is a spelling that names no kind, or more than one.
type badKind struct{ error }

// kind is one served kind.
type kind struct {
	gk         schema.GroupKind
	namespaced bool
}

// Resolver maps every spelling of a kind to the API's group and Kind:
// plural, singular and short names, the Kind itself, in any case, with an
// optional ".group". It reads discovery once and again on a miss (at most
// every MinRefresh). Safe for concurrent use.
type Resolver struct {
	discovery Discovery
	clock     clock.PassiveClock

	mu        sync.Mutex
	names     map[string][]kind // lower-case spelling -> kinds it may mean
	resources map[schema.GroupKind]string
	loaded    time.Time
}

// NewResolver returns a Resolver reading d. clk may be nil (the real clock).
func NewResolver(d Discovery, clk clock.PassiveClock) *Resolver {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Resolver{discovery: d, clock: clk}
}

// Resolve returns the key of the object a kind spelling, namespace and name
// denote. A cluster-scoped kind drops the namespace (alert pipelines often
// fill one in for a Node); a namespaced kind without one is refused rather
// than guessed. Errors wrapping ErrInvalid are final; others are transient.
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
	if k.namespaced {
		if namespace == "" {
			return Key{}, invalid(shown, fmt.Errorf("%s is namespaced: name its namespace", display(k.gk)))
		}
		key.Namespace = namespace
	}
	return key, nil
}

// Parse resolves a target string, as carried by WorkflowExecution.spec.targetResource.
func (r *Resolver) Parse(s string) (Key, error) {
	ns, kind, name, err := split(s)
	if err != nil {
		return Key{}, err
	}
	return r.Resolve(kind, ns, name)
}

// ForRemediation returns the key of a RemediationRequest's target. Its
// apiVersion, when set, picks the group of an ambiguous Kind.
func (r *Resolver) ForRemediation(rr *v1alpha1.RemediationRequest) (Key, error) {
	t := rr.Spec.TargetResource
	kind := t.Kind
	if gv, err := schema.ParseGroupVersion(t.APIVersion); err == nil && gv.Group != "" && !strings.Contains(kind, ".") {
		kind += "." + gv.Group
	}
	return r.Resolve(kind, t.Namespace, t.Name)
}

// ForExecution returns the key of a WorkflowExecution's target.
func (r *Resolver) ForExecution(wfe *v1alpha1.WorkflowExecution) (Key, error) {
	return r.Parse(wfe.Spec.TargetResource)
}

// Spelling is how key is written into a WorkflowExecution: the plain
// "namespace/Kind/name" that kubernaut's executors read, with ".group" only
// where the Kind alone would be ambiguous.
func (r *Resolver) Spelling(key Key) string {
	if k, err := r.kind(key.Kind); err == nil && k.gk == key.GroupKind() {
		return Key{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}.String()
	}
	return key.String()
}

// Resource is the plural resource name of key's kind ("deployments"), as
// authorization checks name it; "" if discovery does not know the kind.
func (r *Resolver) Resource(key Key) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resources[key.GroupKind()]
}

// kind looks a spelling up, re-reading discovery once on a miss.
func (r *Resolver) kind(spelling string) (kind, error) {
	name, group, _ := strings.Cut(strings.ToLower(spelling), ".")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil || (len(r.candidates(name, group)) == 0 && r.clock.Since(r.loaded) >= MinRefresh) {
		if err := r.load(); err != nil {
			return kind{}, err
		}
	}
	switch c := r.candidates(name, group); len(c) {
	case 0:
		return kind{}, badKind{fmt.Errorf("the API server serves no kind %q", spelling)}
	case 1:
		return c[0], nil
	default:
		names := make([]string, len(c))
		for i, k := range c {
			names[i] = display(k.gk)
		}
		slices.Sort(names)
		return kind{}, badKind{fmt.Errorf("kind %q is served by %d groups: write one of %s", spelling, len(c), strings.Join(names, ", "))}
	}
}

func (r *Resolver) candidates(name, group string) []kind {
	var out []kind
	for _, k := range r.names[name] {
		if group == "" || k.gk.Group == group {
			out = append(out, k)
		}
	}
	return out
}

// load rebuilds the spelling table. Groups whose discovery failed (an
// aggregated API down) are left out; the rest still resolve.
func (r *Resolver) load() error {
	lists, err := r.discovery.ServerPreferredResources()
	if err != nil && (len(lists) == 0 || !discovery.IsGroupDiscoveryFailedError(err)) {
		return fmt.Errorf("discovering the API's kinds: %w", err)
	}
	names, resources := map[string][]kind{}, map[schema.GroupKind]string{}
	add := func(spelling string, k kind) {
		spelling = strings.ToLower(spelling)
		if spelling != "" && !slices.Contains(names[spelling], k) {
			names[spelling] = append(names[spelling], k)
		}
	}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range list.APIResources {
			if strings.Contains(res.Name, "/") { // a subresource
				continue
			}
			k := kind{gk: schema.GroupKind{Group: gv.Group, Kind: res.Kind}, namespaced: res.Namespaced}
			resources[k.gk] = res.Name
			for _, s := range append([]string{res.Name, res.SingularName, res.Kind}, res.ShortNames...) {
				add(s, k)
			}
		}
	}
	r.names, r.resources, r.loaded = names, resources, r.clock.Now()
	return nil
}

// display is Kind.group, or Kind for the core group.
func display(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}

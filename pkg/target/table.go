package target

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
)

// builtinGroups are the groups the kube-apiserver serves itself: a bare Kind
// means their kind before any CRD's, as kubectl's RESTMapper has it.
var builtinGroups = func() map[string]bool {
	groups := map[string]bool{"apiextensions.k8s.io": true, "apiregistration.k8s.io": true}
	for gvk := range scheme.Scheme.AllKnownTypes() {
		groups[gvk.Group] = true
	}
	return groups
}()

// badKind is a spelling that names no kind, or more than one.
type badKind struct{ error }

// kind is one served kind.
type kind struct {
	gk         schema.GroupKind
	namespaced bool
	builtin    bool
}

// scope is where the objects of a key's kind live.
type scope int

const (
	namespaced scope = iota
	clusterScoped
	mixed // groups of a kind that is not built in disagree: keep the namespace as written
)

// class gathers the kinds that are not built in and share a lower-cased
// Kind: they share one key (AnyGroup).
type class struct {
	kind   string   // the first Kind spelling in byte order
	scope  scope    //
	groups []string // sorted
}

// resolved is what a kind spelling resolves to.
type resolved struct {
	gk    schema.GroupKind
	scope scope
}

// table is one reading of discovery. It is not client-go's restmapper
// (DiscoveryRESTMapper, ShortcutExpander): those rank groups by discovery
// order alone, so a CRD group listed first, or a CRD's short name, could
// take a built-in kind's spelling, and they resolve an ambiguous Kind to
// one group; the identity rules (built-in groups first, an exact Kind over
// a short name, one Kind.* key per Kind not built in, refusing what two
// such kinds share) are this table's.
type table struct {
	names     map[string][]kind // lower-case spelling -> kinds it may mean, in discovery order
	resources map[schema.GroupKind]string
	classes   map[string]*class // lower-cased Kind -> its class
	failed    []string          // groups whose discovery failed, sorted
}

// candidates are the kinds a lower-cased spelling may mean, in discovery order.
func (t *table) candidates(name, group string) []kind {
	var out []kind
	for _, k := range t.names[name] {
		switch {
		case group == AnyGroup && k.builtin:
		case group != "" && group != AnyGroup && k.gk.Group != group:
		default:
			out = append(out, k)
		}
	}
	return out
}

func (t *table) lookup(spelling, name, group string) (resolved, error) {
	c := t.candidates(name, group)
	if len(c) == 0 {
		if len(t.failed) > 0 && (group == "" || group == AnyGroup || slices.Contains(t.failed, group)) {
			// The kind may be served by a group discovery could not read:
			// a retry may find it, so this is not final.
			return resolved{}, fmt.Errorf("kind %q not found while discovery of groups %s failed", spelling, strings.Join(t.failed, ", "))
		}
		return resolved{}, badKind{fmt.Errorf("the API server serves no kind %q", spelling)}
	}
	// A spelling that is some kind's Kind means that Kind, whatever other
	// kinds it is a plural or short name of ("Quota" is a CRD's Kind, and
	// ResourceQuota's short name): controllers write Kinds.
	if exact := slices.DeleteFunc(slices.Clone(c), func(k kind) bool { return strings.ToLower(k.gk.Kind) != name }); len(exact) > 0 {
		c = exact
	}
	// The first built-in kind in discovery order wins, as in kubectl.
	for _, k := range c {
		if k.builtin {
			return resolved{gk: k.gk, scope: scopeOf(k.namespaced)}, nil
		}
	}
	var kinds []string
	for _, k := range c {
		if l := strings.ToLower(k.gk.Kind); !slices.Contains(kinds, l) {
			kinds = append(kinds, l)
		}
	}
	// A spelling that is one kind's Kind and another's plural or short name
	// means the Kind: that is what the controller writes.
	if len(kinds) > 1 && slices.Contains(kinds, name) {
		kinds = []string{name}
	}
	if len(kinds) > 1 {
		names := make([]string, len(c))
		for i, k := range c {
			names[i] = display(k.gk)
		}
		slices.Sort(names)
		return resolved{}, badKind{fmt.Errorf("%q names %d kinds: write one of %s", spelling, len(c), strings.Join(names, ", "))}
	}
	cl := t.classes[kinds[0]]
	return resolved{gk: schema.GroupKind{Group: AnyGroup, Kind: cl.kind}, scope: cl.scope}, nil
}

func scopeOf(isNamespaced bool) scope {
	if isNamespaced {
		return namespaced
	}
	return clusterScoped
}

// load rebuilds the table. Groups whose discovery failed (an aggregated API
// down) are left out, and a miss is then transient; the rest still resolve.
func (r *Resolver) load() error {
	if r.table != nil {
		// A caching discovery client (kubectl's) would serve the very
		// table being refreshed.
		if c, ok := r.discovery.(interface{ Invalidate() }); ok {
			c.Invalidate()
		}
	}
	lists, err := r.discovery.ServerPreferredResources()
	failed, err := failedGroups(lists, err)
	if err != nil {
		return err
	}
	t := &table{names: map[string][]kind{}, resources: map[schema.GroupKind]string{}, classes: map[string]*class{}, failed: failed}
	for _, list := range lists {
		if list != nil {
			t.addList(list)
		}
	}
	r.table, r.loaded = t, r.clock.Now()
	return nil
}

// failedGroups are the groups, sorted, a partial discovery could not read;
// any other error fails the whole read.
func failedGroups(lists []*metav1.APIResourceList, err error) ([]string, error) {
	if err == nil {
		return nil, nil
	}
	var partial *discovery.ErrGroupDiscoveryFailed
	if len(lists) == 0 || !errors.As(err, &partial) {
		return nil, fmt.Errorf("discovering the API's kinds: %w", err)
	}
	var failed []string
	for gv := range partial.Groups {
		failed = append(failed, gv.Group)
	}
	slices.Sort(failed)
	return slices.Compact(failed), nil
}

// addList adds the kinds of one group version, by every spelling.
func (t *table) addList(list *metav1.APIResourceList) {
	gv, err := schema.ParseGroupVersion(list.GroupVersion)
	if err != nil {
		return
	}
	for _, res := range list.APIResources {
		if strings.Contains(res.Name, "/") || res.Kind == "" { // a subresource
			continue
		}
		k := kind{gk: schema.GroupKind{Group: gv.Group, Kind: res.Kind}, namespaced: res.Namespaced, builtin: builtinGroups[gv.Group]}
		t.resources[k.gk] = res.Name
		for _, s := range append([]string{res.Name, res.SingularName, res.Kind}, res.ShortNames...) {
			t.add(s, k)
		}
		if !k.builtin {
			t.addToClass(k)
		}
	}
}

func (t *table) add(spelling string, k kind) {
	spelling = strings.ToLower(spelling)
	if spelling != "" && !slices.Contains(t.names[spelling], k) {
		t.names[spelling] = append(t.names[spelling], k)
	}
}

func (t *table) addToClass(k kind) {
	l := strings.ToLower(k.gk.Kind)
	c := t.classes[l]
	if c == nil {
		c = &class{kind: k.gk.Kind, scope: scopeOf(k.namespaced)}
		t.classes[l] = c
	}
	if k.gk.Kind < c.kind {
		c.kind = k.gk.Kind
	}
	if c.scope != scopeOf(k.namespaced) {
		c.scope = mixed
	}
	if i, found := slices.BinarySearch(c.groups, k.gk.Group); !found {
		c.groups = slices.Insert(c.groups, i, k.gk.Group)
	}
}

// display is Kind.group, or Kind for the core group and a kind not built in.
func display(gk schema.GroupKind) string {
	if gk.Group == "" || gk.Group == AnyGroup {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}

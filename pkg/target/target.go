// Package target turns a remediation target, however it is spelled, into the
// one key of the object it names, and that key into the name of the Lease
// that locks it. Every component derives keys here, so the orchestrator and
// the admission webhook always contend on the same Lease for the same object.
//
// A key is canonical, and its string form is what the Lease name hashes:
//
//	namespace/Kind.group/name   a built-in kind ("demo/Deployment.apps/app");
//	Kind/name                   the core group has no suffix ("Node/worker-1");
//	namespace/Kind.*/name       any other kind (CRD or aggregated API);
//	<local key>@clusterID       a target in a remote cluster.
//
// The namespace appears only for a namespaced kind: a cluster-scoped kind
// drops the one written (alert pipelines fill one in for Nodes), and a
// namespaced kind without one is refused rather than guessed.
//
// Built-in kinds (a group the kube-apiserver serves itself) win a bare Kind,
// as kubectl's RESTMapper has them win: with Longhorn installed, "Node" is
// the core Node and "Node.longhorn.io" Longhorn's. Where several built-in
// groups serve a Kind (core and events.k8s.io Event), the first in discovery
// order wins, again as kubectl does.
//
// Every other kind is keyed without its group ("*"): a Kind served by several
// CRD groups can only be told apart by a group the real controller never
// writes, so every candidate shares one key. That over-locks (two objects of
// one name in two groups contend), which is safe; refusing the target would
// not be, since the controller would retry it forever. It also keeps one key
// for one object when a spelling names the group and another does not, and
// when a CRD moves between groups while two replicas see different discovery.
// The Kind of such a key is the one discovery spells; should CRD groups serve
// Kinds differing only in case, the key takes the first of them in byte
// order, so that they still share it. Its scope follows discovery when every
// group of the Kind agrees, else the namespace is kept as written.
//
// A remote cluster's target (spec.clusterID) cannot be resolved through this
// cluster's discovery, except a built-in kind, which is the same on every
// cluster: it resolves here, any spelling, with its scope ("nodes",
// "ns/Node" and "Node" are one Node there). Any other kind is keyed
// lower-cased, exactly as written: "Gadget" and "gadget" agree, but a
// plural, a short name or an added group is a different key; three parts
// are namespaced, two cluster-scoped.
//
// A Resolver reads discovery again when told a CRD or APIService changed
// (Invalidate, driven by WatchAPIChanges), when its table is older than
// MaxAge, and on an unknown spelling (at most every MinRefresh): replicas
// that resolve with different tables could lock one object twice.
package target

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Form is the expected shape of a target string, quoted in every parse error.
const Form = `"namespace/Kind/name", or "Kind/name" for a cluster-scoped resource ` +
	`(Kind may be a plural, singular or short name, with ".group" to pick a group)`

// LeasePrefix starts the name of every target Lease.
const LeasePrefix = "targetlock-"

// AnyGroup is the Group of a key of a kind the kube-apiserver does not serve
// itself (a CRD or an aggregated API): such keys leave the group out.
const AnyGroup = "*"

// MaxClusterIDLength bounds a cluster ID, as the WorkflowExecution CRD does.
const MaxClusterIDLength = 253

// hashLen is the number of hex digits of SHA-256 kept in a Lease name:
// 160 bits, so accidental collisions are out of reach, and the name stays a
// valid label value (<= 63 characters).
const hashLen = 40

// ErrInvalid marks a target no retry can fix: malformed, of a kind the API
// does not serve, or ambiguous. Other errors (discovery failing) are transient.
var ErrInvalid = errors.New("invalid target")

// kindPattern is a kind spelling: a name with an optional ".group" suffix,
// or ".*" (AnyGroup) as a key writes a kind that is not built in.
var kindPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?))?$`)

// Key identifies one API object. Group and Kind are spelled as the API
// serves them (Group is AnyGroup for a kind that is not built in), or
// lower-cased as written for a remote cluster's; Namespace is empty for a
// cluster-scoped kind; Cluster is empty for this cluster. Build keys with a
// Resolver, or with Parse for a string already canonical.
type Key struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
	Cluster   string
}

// String is the canonical form: "namespace/Kind.group/name" or
// "Kind.group/name", followed by "@cluster" for a remote cluster.
func (k Key) String() string {
	kind := k.Kind
	if k.Group != "" {
		kind += "." + k.Group
	}
	s := kind + "/" + k.Name
	if k.Namespace != "" {
		s = k.Namespace + "/" + s
	}
	if k.Cluster != "" {
		s += "@" + k.Cluster
	}
	return s
}

// GroupKind is the key's group and Kind.
func (k Key) GroupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

// Hash is the hex SHA-256 prefix of the canonical form; it is a valid label
// value, carried by every Lease, WFE and RR of the object.
func (k Key) Hash() string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// LeaseName is the name of the Lease that locks this target: a DNS-1123
// label, never truncated from the key, so distinct keys never share a name.
func (k Key) LeaseName() string {
	return LeasePrefix + k.Hash()
}

// Parse reads a key in its canonical form, as String writes it (the target
// annotation of a Lease). It checks the syntax only and consults no API: a
// spelling from a user goes through Resolver.Parse instead.
func Parse(s string) (Key, error) {
	// Cut at the first "@": no name, namespace or kind holds one, while a
	// cluster ID may (and "/" or ":" too, as an ARN does).
	local, cluster, remote := strings.Cut(s, "@")
	if remote {
		if err := validateCluster(cluster); err != nil {
			return Key{}, invalid(s, err)
		}
	}
	ns, kind, name, err := split(local)
	if err != nil {
		return Key{}, err
	}
	k, group, _ := strings.Cut(kind, ".")
	key := Key{Group: group, Kind: k, Namespace: ns, Name: name, Cluster: cluster}
	if remote && (group == AnyGroup || kind != strings.ToLower(kind)) {
		return Key{}, invalid(s, fmt.Errorf("not canonical: a remote cluster's kind is lower-case, with its group as written"))
	}
	if key.String() != s {
		return Key{}, invalid(s, fmt.Errorf("not canonical"))
	}
	return key, nil
}

// split checks the syntax of a target string and returns its parts.
func split(s string) (namespace, kind, name string, err error) {
	switch parts := strings.Split(s, "/"); len(parts) {
	case 2:
		kind, name = parts[0], parts[1]
	case 3:
		if parts[0] == "" {
			return "", "", "", invalid(s, fmt.Errorf("empty namespace"))
		}
		namespace, kind, name = parts[0], parts[1], parts[2]
	default:
		return "", "", "", invalid(s, fmt.Errorf("expected 2 or 3 \"/\"-separated parts, got %d", len(parts)))
	}
	if err := validate(kind, namespace, name); err != nil {
		return "", "", "", invalid(s, err)
	}
	return namespace, kind, name, nil
}

func validate(kind, namespace, name string) error {
	switch {
	case kind == "":
		return fmt.Errorf("empty kind")
	case len(kind) > validation.DNS1123SubdomainMaxLength:
		return fmt.Errorf("kind longer than %d characters", validation.DNS1123SubdomainMaxLength)
	case !kindPattern.MatchString(kind):
		return fmt.Errorf("kind must be ASCII letters and digits, starting with a letter, with an optional .group")
	case name == "":
		return fmt.Errorf("empty name")
	}
	if namespace != "" {
		if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
			return fmt.Errorf("namespace: %s", errs[0])
		}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("name: %s", errs[0])
	}
	return nil
}

// validateCluster accepts any printable cluster ID without spaces: IDs are
// opaque (names, ARNs, URLs), but one must read the same in a Lease's
// annotation, a log and an error, and never be blank.
func validateCluster(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return fmt.Errorf("empty cluster ID")
	case len(id) > MaxClusterIDLength:
		return fmt.Errorf("cluster ID longer than %d bytes", MaxClusterIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("cluster ID is not UTF-8")
	}
	for _, c := range id {
		if unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return fmt.Errorf("cluster ID holds a space or control character %q", c)
		}
	}
	return nil
}

func invalid(s string, err error) error {
	return fmt.Errorf("%w %s: %w; want %s", ErrInvalid, quote(s), err, Form)
}

// quote keeps error messages short and printable whatever the input.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// HashIndex is the name of a cache index of RemediationRequests and
// WorkflowExecutions by the identity hash of their object (IndexHash): a
// lookup by object costs that object's entries, not a scan of the cache.
const HashIndex = ".metadata.labels.targetHash"

// IndexHash returns the identity hash an object carries in
// v1alpha1.TargetHashLabel, for a cache's IndexField under HashIndex.
func IndexHash(obj client.Object) []string {
	if h := obj.GetLabels()[v1alpha1.TargetHashLabel]; h != "" {
		return []string{h}
	}
	return nil
}

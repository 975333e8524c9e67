// Package target turns a remediation target, however it is spelled, into the
// one key of the object it names, and that key into the name of the Lease
// that locks it. Every component derives keys here, so the orchestrator and
// the admission webhook always contend on the same Lease for the same object.
//
// A key is canonical: the API's own group and Kind (resolved by a Resolver
// through discovery), the namespace only for a namespaced kind, and the name.
// Its string form is "namespace/Kind.group/name", or "Kind.group/name" for a
// cluster-scoped kind; the core group has no suffix ("Node/worker-1").
package target

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

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

// hashLen is the number of hex digits of SHA-256 kept in a Lease name:
// 160 bits, so accidental collisions are out of reach, and the name stays a
// valid label value (<= 63 characters).
const hashLen = 40

// ErrInvalid marks a target no retry can fix: malformed, of a kind the API
// does not serve, or ambiguous. Other errors (discovery failing) are transient.
var ErrInvalid = errors.New("invalid target")

// kindPattern is a kind spelling: a name with an optional ".group" suffix.
var kindPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$`)

// Key identifies one API object. Group and Kind are spelled as the API
// serves them; Namespace is empty for a cluster-scoped kind. Build keys with
// a Resolver, or with Parse for a string already canonical.
type Key struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
}

// String is the canonical form: "namespace/Kind.group/name" or "Kind.group/name".
func (k Key) String() string {
	kind := k.Kind
	if k.Group != "" {
		kind += "." + k.Group
	}
	if k.Namespace == "" {
		return kind + "/" + k.Name
	}
	return k.Namespace + "/" + kind + "/" + k.Name
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
	ns, kind, name, err := split(s)
	if err != nil {
		return Key{}, err
	}
	k, group, _ := strings.Cut(kind, ".")
	key := Key{Group: group, Kind: k, Namespace: ns, Name: name}
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

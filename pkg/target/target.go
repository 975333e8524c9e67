// Package target turns a remediation target into its canonical key and the
// name of the Lease that locks it. Every component derives keys here, so the
// orchestrator and the admission webhook always contend on the same Lease.
package target

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Form is the expected shape of a target string, quoted in every parse error.
const Form = `"namespace/Kind/name", or "Kind/name" for a cluster-scoped resource`

// LeasePrefix starts the name of every target Lease.
const LeasePrefix = "targetlock-"

// hashLen is the number of hex digits of SHA-256 kept in a Lease name:
// 160 bits, so accidental collisions are out of reach, and the name stays a
// valid label value (<= 63 characters).
const hashLen = 40

var kindPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)

// Key identifies a target. Kind is lower-cased; the API group is ignored, so
// two kinds that differ only in group share a key: at worst false contention,
// never a missed conflict. Build keys with New or Parse.
type Key struct {
	Namespace string
	Kind      string
	Name      string
}

// New validates the parts of a target and returns its key.
func New(kind, namespace, name string) (Key, error) {
	k := Key{Namespace: namespace, Kind: strings.ToLower(kind), Name: name}
	if err := k.validate(); err != nil {
		return Key{}, invalid(Key{Namespace: namespace, Kind: kind, Name: name}.String(), err)
	}
	return k, nil
}

// Parse reads a target string, as carried by WorkflowExecution.spec.targetResource.
func Parse(s string) (Key, error) {
	var k Key
	switch parts := strings.Split(s, "/"); len(parts) {
	case 2:
		k = Key{Kind: parts[0], Name: parts[1]}
	case 3:
		if parts[0] == "" {
			return Key{}, invalid(s, fmt.Errorf("empty namespace"))
		}
		k = Key{Namespace: parts[0], Kind: parts[1], Name: parts[2]}
	default:
		return Key{}, invalid(s, fmt.Errorf("expected 2 or 3 \"/\"-separated parts, got %d", len(parts)))
	}
	k.Kind = strings.ToLower(k.Kind)
	if err := k.validate(); err != nil {
		return Key{}, invalid(s, err)
	}
	return k, nil
}

// ForRemediation returns the key of a RemediationRequest's target.
func ForRemediation(rr *v1alpha1.RemediationRequest) (Key, error) {
	t := rr.Spec.TargetResource
	return New(t.Kind, t.Namespace, t.Name)
}

// ForExecution returns the key of a WorkflowExecution's target.
func ForExecution(wfe *v1alpha1.WorkflowExecution) (Key, error) {
	return Parse(wfe.Spec.TargetResource)
}

// String is the canonical form: "namespace/kind/name" or "kind/name".
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Namespace + "/" + k.Kind + "/" + k.Name
}

// Hash is the hex SHA-256 prefix of the canonical form; it is a valid label value.
func (k Key) Hash() string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// LeaseName is the name of the Lease that locks this target: a DNS-1123
// label, never truncated from the key, so distinct keys never share a name.
func (k Key) LeaseName() string {
	return LeasePrefix + k.Hash()
}

func (k Key) validate() error {
	switch {
	case k.Kind == "":
		return fmt.Errorf("empty kind")
	case len(k.Kind) > validation.DNS1123LabelMaxLength:
		return fmt.Errorf("kind longer than %d characters", validation.DNS1123LabelMaxLength)
	case !kindPattern.MatchString(k.Kind):
		return fmt.Errorf("kind must be ASCII letters and digits, starting with a letter")
	case k.Name == "":
		return fmt.Errorf("empty name")
	}
	if k.Namespace != "" {
		if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
			return fmt.Errorf("namespace: %s", errs[0])
		}
	}
	if errs := validation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return fmt.Errorf("name: %s", errs[0])
	}
	return nil
}

func invalid(s string, err error) error {
	return fmt.Errorf("invalid target %s: %w; want %s", quote(s), err, Form)
}

// quote keeps error messages short and printable whatever the input.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

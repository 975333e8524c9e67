package lease_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestLeaseOnAPIServer(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Lease Suite (real API server)")
}

// newNamespace creates a namespace for one test's Leases.
func newNamespace(ctx context.Context, c client.Client) (string, error) {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lease-"}}
	if err := c.Create(ctx, n); err != nil {
		return "", err
	}
	return n.Name, nil
}

func newLock(c lease.Client, ns, identity string, clk clock.PassiveClock, d time.Duration) *lease.Lock {
	l, err := lease.New(c, lease.Options{Namespace: ns, Identity: identity, Duration: d, ClaimGrace: d, Clock: clk})
	Expect(err).NotTo(HaveOccurred())
	return l
}

func mustKey(s string) target.Key {
	k, err := target.Parse(s)
	Expect(err).NotTo(HaveOccurred())
	return k
}

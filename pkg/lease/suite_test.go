package lease_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newNamespace creates a namespace for one test's Leases.
func newNamespace(ctx context.Context, c client.Client) (string, error) {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lease-"}}
	if err := c.Create(ctx, n); err != nil {
		return "", err
	}
	return n.Name, nil
}

func newLock(t *testing.T, c lease.Client, ns, identity string, clk clock.PassiveClock, d time.Duration) *lease.Lock {
	t.Helper()
	l, err := lease.New(c, lease.Options{Namespace: ns, Identity: identity, Duration: d, ClaimGrace: d, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustKey(s string) target.Key {
	k, err := target.Parse(s)
	if err != nil {
		panic(err)
	}
	return k
}

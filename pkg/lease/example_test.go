package lease_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/pkg/target"
)

// exampleLocks returns a lock per identity on one API (a fake one here; a
// live client in production) and the clock they share.
func exampleLocks(identities ...string) ([]*lease.Lock, *clocktesting.FakeClock) {
	c := fake.NewClientBuilder().Build()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	var locks []*lease.Lock
	for _, id := range identities {
		l, err := lease.New(c, lease.Options{Namespace: "targetlock-system", Identity: id, Clock: clk})
		if err != nil {
			panic(err)
		}
		locks = append(locks, l)
	}
	return locks, clk
}

var exampleKey, _ = target.Parse("demo/Deployment.apps/checkout")

// A lock excludes every other acquisition of its target, in this process
// or another, until it is released.
func ExampleLock_Acquire() {
	ctx := context.Background()
	locks, _ := exampleLocks("orchestrator-0", "orchestrator-1")
	a, b := locks[0], locks[1]

	tok, acquired, err := a.Acquire(ctx, exampleKey)
	fmt.Println("orchestrator-0 acquired:", acquired, err, "holder pod:", lease.PodOf(tok.ID))
	_, acquired, err = b.Acquire(ctx, exampleKey)
	fmt.Println("orchestrator-1 acquired:", acquired, err)

	if err := a.Release(ctx, tok); err != nil {
		panic(err)
	}
	_, acquired, _ = b.Acquire(ctx, exampleKey)
	fmt.Println("after release, orchestrator-1 acquired:", acquired)
	// Output:
	// orchestrator-0 acquired: true <nil> holder pod: orchestrator-0
	// orchestrator-1 acquired: false <nil>
	// after release, orchestrator-1 acquired: true
}

// A lock lasts Duration (30s by default) from its last renewal; past that,
// another holder may take it over, and the old token's Renew fails.
func ExampleLock_Renew() {
	ctx := context.Background()
	locks, clk := exampleLocks("orchestrator-0", "orchestrator-1")
	a, b := locks[0], locks[1]
	tok, _, _ := a.Acquire(ctx, exampleKey)

	clk.Step(25 * time.Second)
	fmt.Println("renewed at 25s:", a.Renew(ctx, tok))
	clk.Step(25 * time.Second)
	_, acquired, _ := b.Acquire(ctx, exampleKey)
	fmt.Println("taken over at 50s:", acquired)
	clk.Step(10 * time.Second)
	_, acquired, _ = b.Acquire(ctx, exampleKey)
	fmt.Println("taken over at 60s:", acquired)
	fmt.Println("renew by the old token:", errors.Is(a.Renew(ctx, tok), lease.ErrNotHeld))
	// Output:
	// renewed at 25s: <nil>
	// taken over at 50s: false
	// taken over at 60s: true
	// renew by the old token: true
}

// A claim hands the target to a WorkflowExecution until it ends: the
// admission webhook writes it over the state it inspected, in one
// compare-and-swap, and the orchestrator releases it.
func ExampleLock_Claim() {
	ctx := context.Background()
	locks, _ := exampleLocks("webhook-0", "orchestrator-0")
	webhook, orchestrator := locks[0], locks[1]
	owner := lease.Owner{Namespace: "demo", Name: "wfe-1", UID: "uid-1"}

	st, _ := webhook.Inspect(ctx, exampleKey)
	fmt.Println("before:", st)
	fmt.Println("claim:", webhook.Claim(ctx, st, owner))
	fmt.Println("claim again from the same read:", errors.Is(webhook.Claim(ctx, st, owner), lease.ErrConflict))

	_, acquired, _ := orchestrator.Acquire(ctx, exampleKey)
	st, _ = orchestrator.Inspect(ctx, exampleKey)
	fmt.Println("acquired:", acquired, "-", st)

	released, err := orchestrator.ReleaseClaim(ctx, st, owner.UID)
	st, _ = orchestrator.Inspect(ctx, exampleKey)
	fmt.Println("released:", released, err, "-", st)
	// Output:
	// before: free
	// claim: <nil>
	// claim again from the same read: true
	// acquired: false - claimed by WorkflowExecution demo/wfe-1
	// released: true <nil> - free
}

// Decode reads any target Lease, as a List or a cache returns it.
func ExampleDecode() {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l, _ := lease.New(c, lease.Options{Namespace: "targetlock-system", Identity: "orchestrator-0", Clock: clk})
	if _, _, err := l.Acquire(ctx, exampleKey); err != nil {
		panic(err)
	}

	list := &coordinationv1.LeaseList{}
	if err := c.List(ctx, list, client.InNamespace("targetlock-system"), client.MatchingLabels{lease.ManagedByLabel: lease.ManagedBy}); err != nil {
		panic(err)
	}
	for i := range list.Items {
		st := lease.Decode(&list.Items[i])
		fmt.Println(st.Key, st.Phase, lease.PodOf(st.Holder), st.Expires.Format(time.TimeOnly), st.Expired(clk.Now()))
	}
	// Output:
	// demo/Deployment.apps/checkout Locked orchestrator-0 12:00:30 false
}

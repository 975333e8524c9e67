package ring

import (
	"fmt"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		// Shaped like target hashes and namespace/name pairs alike.
		out[i] = fmt.Sprintf("ns-%d/rr-%d", i%7, i)
	}
	return out
}

func counts(v View, ks []string) map[string]int {
	c := map[string]int{}
	for _, k := range ks {
		c[v.Owner(k)]++
	}
	return c
}

func TestBalance(t *testing.T) {
	ks := keys(30000)
	for _, n := range []int{2, 3, 5, 10} {
		var ids []string
		for i := range n {
			ids = append(ids, fmt.Sprintf("orchestrator-7c9d8-%d", i))
		}
		c := counts(NewView("", ids...), ks)
		want := len(ks) / n
		for id, got := range c {
			// Binomial spread at 30000 keys is ~1%; 10% is a broken hash.
			if d := float64(got-want) / float64(want); d > 0.1 || d < -0.1 {
				t.Errorf("%d members: %s owns %d keys, want about %d", n, id, got, want)
			}
		}
	}
}

func TestMinimalMovement(t *testing.T) {
	ks := keys(20000)
	three := NewView("", "a", "b", "c")
	four := NewView("", "a", "b", "c", "d")
	moved := 0
	for _, k := range ks {
		before, after := three.Owner(k), four.Owner(k)
		if before != after {
			moved++
			if after != "d" {
				t.Fatalf("adding d moved %s from %s to %s: only moves to d are needed", k, before, after)
			}
		}
	}
	if frac := float64(moved) / float64(len(ks)); frac < 0.22 || frac > 0.28 {
		t.Errorf("adding a 4th member moved %.3f of the keys, want about 1/4", frac)
	}

	two := NewView("", "a", "c")
	for _, k := range ks {
		if before, after := three.Owner(k), two.Owner(k); before != "b" && before != after {
			t.Fatalf("removing b moved %s from %s to %s", k, before, after)
		}
	}
}

func TestOwns(t *testing.T) {
	v := NewView("b", "c", "a", "b", "a")
	if got := v.Members(); fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("members %v, want sorted and unique", got)
	}
	ks := keys(100)
	for _, k := range ks {
		if v.Owns(k) != (v.Owner(k) == "b") {
			t.Fatalf("Owns(%s) disagrees with Owner", k)
		}
	}
	// A replica that is not a live member owns nothing, and with no members
	// no one does.
	out := NewView("z", "a", "b")
	for _, k := range ks {
		if out.Owns(k) {
			t.Fatalf("z owns %s without being a member", k)
		}
	}
	if o := NewView("z").Owner("k"); o != "" {
		t.Fatalf("owner %q with no members", o)
	}
	// Every replica computes the same owner from the same members.
	if x, y := NewView("a", "a", "b", "c"), NewView("c", "c", "b", "a"); x.Owner("k") != y.Owner("k") {
		t.Fatal("views of the same members disagree")
	}
}

func TestLeaseName(t *testing.T) {
	if got := LeaseName("orchestrator-7c9d8-x2"); got != "targetlock-member-orchestrator-7c9d8-x2" {
		t.Errorf("LeaseName = %s", got)
	}
	if got := LeaseName("My_Host"); got == "targetlock-member-My_Host" || len(got) != len(LeasePrefix)+20 {
		t.Errorf("LeaseName of an invalid name = %s, want its hash", got)
	}
}

func BenchmarkOwner100(b *testing.B) {
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("orchestrator-%d", i))
	}
	v := NewView("orchestrator-1", ids...)
	for b.Loop() {
		v.Owner("3f2a9c0e11d4b7a8")
	}
}

// TestRank: for every key the members' ranks are 0..n-1, each once; rank 0
// is the owner, and rank 1 the owner once the owner leaves. A replica that
// is not a member ranks after them all.
func TestRank(t *testing.T) {
	members := []string{"a", "b", "c", "d"}
	for _, k := range keys(200) {
		seen := map[int]string{}
		for _, m := range members {
			r := NewView(m, members...).Rank(k)
			if other, dup := seen[r]; dup || r < 0 || r >= len(members) {
				t.Fatalf("key %s: %s has rank %d (also %q)", k, m, r, other)
			}
			seen[r] = m
		}
		owner := NewView("", members...).Owner(k)
		if seen[0] != owner {
			t.Fatalf("key %s: rank 0 is %s, the owner %s", k, seen[0], owner)
		}
		var rest []string
		for _, m := range members {
			if m != owner {
				rest = append(rest, m)
			}
		}
		if next := NewView("", rest...).Owner(k); seen[1] != next {
			t.Fatalf("key %s: rank 1 is %s, the owner without %s is %s", k, seen[1], owner, next)
		}
	}
	if r := NewView("z", members...).Rank("k"); r != len(members) {
		t.Errorf("a non-member's rank %d, want %d", r, len(members))
	}
}

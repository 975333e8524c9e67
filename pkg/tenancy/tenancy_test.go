package tenancy

import (
	"strings"
	"testing"
)

const orch = "system:serviceaccount:targetlock-system:targetlock-orchestrator"

// sa is ServiceAccount ns/name as the API server authenticates it.
func sa(ns, name string) User {
	return User{Username: ServiceAccountUser(ns, name), Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
}

// named is a user of that name without ServiceAccount groups: what an OIDC
// provider or an x509 CN may claim.
func named(name string) User {
	return User{Username: name, Groups: []string{"system:authenticated"}}
}

func TestPermits(t *testing.T) {
	trust := Trust{Orchestrator: orch, Namespaces: []string{"ops"}, ServiceAccounts: []string{"ci/deployer"}}
	tests := []struct {
		name       string
		user       User
		ns, target string
		want       bool
	}{
		{name: "own namespace", user: named("alice"), ns: "team-a", target: "team-a", want: true},
		{name: "another namespace", user: named("alice"), ns: "team-a", target: "team-b"},
		{name: "cluster-scoped", user: named("alice"), ns: "team-a", target: ""},
		{name: "the orchestrator", user: sa("targetlock-system", "targetlock-orchestrator"), ns: "team-a", target: "", want: true},
		{name: "the orchestrator's username without its groups", user: named(orch), ns: "team-a", target: ""},
		{name: "a trusted namespace", user: named("alice"), ns: "ops", target: "team-b", want: true},
		{name: "a trusted ServiceAccount", user: sa("ci", "deployer"), ns: "team-a", target: "", want: true},
		{name: "its username without its groups", user: named("system:serviceaccount:ci:deployer"), ns: "team-a", target: ""},
		{name: "its username with another namespace's group", user: User{Username: "system:serviceaccount:ci:deployer",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:team-a"}}, ns: "team-a", target: ""},
		{name: "another ServiceAccount", user: sa("ci", "other"), ns: "team-a", target: ""},
		{name: "not a ServiceAccount username", user: named("system:serviceaccount:ci"), ns: "team-a", target: ""},
		{name: "no user, own namespace", ns: "team-a", target: "team-a", want: true},
		{name: "no user, another namespace", ns: "team-a", target: "team-b"},
	}
	for _, tt := range tests {
		if got := trust.Permits(tt.user, tt.ns, tt.target); got != tt.want {
			t.Errorf("%s: Permits(%v, %q, %q) = %v, want %v", tt.name, tt.user, tt.ns, tt.target, got, tt.want)
		}
	}
	if !(Trust{Namespaces: []string{"*"}}).Permits(User{}, "team-a", "") {
		t.Error(`"*" does not trust every namespace`)
	}
	if (Trust{}).Permits(User{}, "team-a", "") {
		t.Error("an empty Trust with no user permits a foreign object")
	}
}

func TestIsOrchestrator(t *testing.T) {
	trust := Trust{Orchestrator: orch}
	for _, tt := range []struct {
		name  string
		trust Trust
		user  User
		want  bool
	}{
		{"its ServiceAccount", trust, sa("targetlock-system", "targetlock-orchestrator"), true},
		{"its username, no groups", trust, named(orch), false},
		{"its username, only the all-ServiceAccounts group", trust, User{Username: orch, Groups: []string{"system:serviceaccounts"}}, false},
		{"another user", trust, named("alice"), false},
		{"none configured", Trust{}, User{}, false},
		// A configured username that is no ServiceAccount's is compared as is.
		{"a plain user configured", Trust{Orchestrator: "admin"}, named("admin"), true},
	} {
		if got := tt.trust.IsOrchestrator(tt.user); got != tt.want {
			t.Errorf("%s: IsOrchestrator(%v) = %v, want %v", tt.name, tt.user, got, tt.want)
		}
	}
}

func TestValidateVerb(t *testing.T) {
	for _, verb := range append([]string{""}, WriteVerbs...) {
		if err := (Trust{Verb: verb}).Validate(); err != nil {
			t.Errorf("verb %q refused: %v", verb, err)
		}
	}
	for _, verb := range []string{"get", "list", "watch", "create", "*", "Patch"} {
		err := (Trust{Verb: verb}).Validate()
		if err == nil || !strings.Contains(err.Error(), "write access") || !strings.Contains(err.Error(), "patch, update, delete") {
			t.Errorf("verb %q: %v, want refused naming the write verbs", verb, err)
		}
	}
}

func TestRefusal(t *testing.T) {
	tests := []struct{ target, want string }{
		{"team-b", "a WorkflowExecution in namespace team-a may name only objects in namespace team-a, and this one is in namespace team-b; create it there, or ask"},
		{"", "a WorkflowExecution in namespace team-a may name only objects in namespace team-a, and this one is cluster-scoped; create it there, or ask"},
	}
	for _, tt := range tests {
		if got := Refusal("WorkflowExecution", "team-a", "this one", tt.target, "ask"); got != tt.want {
			t.Errorf("Refusal(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestServiceAccountUser(t *testing.T) {
	u := ServiceAccountUser("ci", "deployer")
	if u != "system:serviceaccount:ci:deployer" || serviceAccountOf(u) != "ci/deployer" {
		t.Errorf("ServiceAccountUser = %q, serviceAccountOf = %q", u, serviceAccountOf(u))
	}
}

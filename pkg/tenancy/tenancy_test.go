package tenancy

import "testing"

func TestPermits(t *testing.T) {
	const orch = "system:serviceaccount:targetlock-system:targetlock-orchestrator"
	trust := Trust{Orchestrator: orch, Namespaces: []string{"ops"}, ServiceAccounts: []string{"ci/deployer"}}
	tests := []struct {
		name, user, ns, target string
		want                   bool
	}{
		{name: "own namespace", user: "alice", ns: "team-a", target: "team-a", want: true},
		{name: "another namespace", user: "alice", ns: "team-a", target: "team-b"},
		{name: "cluster-scoped", user: "alice", ns: "team-a", target: ""},
		{name: "the orchestrator", user: orch, ns: "team-a", target: "", want: true},
		{name: "a trusted namespace", user: "alice", ns: "ops", target: "team-b", want: true},
		{name: "a trusted ServiceAccount", user: "system:serviceaccount:ci:deployer", ns: "team-a", target: "", want: true},
		{name: "another ServiceAccount", user: "system:serviceaccount:ci:other", ns: "team-a", target: ""},
		{name: "not a ServiceAccount username", user: "system:serviceaccount:ci", ns: "team-a", target: ""},
		{name: "no user, own namespace", ns: "team-a", target: "team-a", want: true},
		{name: "no user, another namespace", ns: "team-a", target: "team-b"},
	}
	for _, tt := range tests {
		if got := trust.Permits(tt.user, tt.ns, tt.target); got != tt.want {
			t.Errorf("%s: Permits(%q, %q, %q) = %v, want %v", tt.name, tt.user, tt.ns, tt.target, got, tt.want)
		}
	}
	if !(Trust{Namespaces: []string{"*"}}).Permits("", "team-a", "") {
		t.Error(`"*" does not trust every namespace`)
	}
	if (Trust{}).Permits("", "team-a", "") {
		t.Error("an empty Trust with no user permits a foreign object")
	}
	for _, tt := range []struct {
		trust Trust
		user  string
		want  bool
	}{{trust, orch, true}, {trust, "alice", false}, {Trust{}, "", false}} {
		if got := tt.trust.IsOrchestrator(tt.user); got != tt.want {
			t.Errorf("Trust{Orchestrator: %q}.IsOrchestrator(%q) = %v, want %v", tt.trust.Orchestrator, tt.user, got, tt.want)
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

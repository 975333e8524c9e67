// Package targettest serves a fixed table of API kinds, so that tests without
// an API server resolve targets as a real cluster would.
package targettest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/targetlock/targetlock/pkg/target"
)

// Resources is what a v1.37 API server serves for the kinds the tests name,
// in its group order (built-in groups first), plus a kind two built-in
// groups serve (Event), custom resources (Widget), one whose Kind is a
// built-in's (Longhorn's Node, namespaced as Longhorn has it), and one Kind
// two custom groups serve (Route).
var Resources = target.Resources{
	{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "nodes", SingularName: "node", Kind: "Node", ShortNames: []string{"no"}},
		{Name: "nodes/status", Kind: "Node"},
		{Name: "pods", SingularName: "pod", Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}},
		{Name: "events", SingularName: "event", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}},
	}},
	{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments", SingularName: "deployment", Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}},
		{Name: "statefulsets", SingularName: "statefulset", Kind: "StatefulSet", Namespaced: true, ShortNames: []string{"sts"}},
	}},
	{GroupVersion: "events.k8s.io/v1", APIResources: []metav1.APIResource{
		{Name: "events", SingularName: "event", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}},
	}},
	{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
		{Name: "widgets", SingularName: "widget", Kind: "Widget", Namespaced: true, ShortNames: []string{"wd"}},
	}},
	{GroupVersion: "longhorn.io/v1beta2", APIResources: []metav1.APIResource{
		{Name: "nodes", SingularName: "node", Kind: "Node", Namespaced: true, ShortNames: []string{"lhn"}},
		{Name: "nodes/status", Kind: "Node", Namespaced: true},
	}},
	{GroupVersion: "route.openshift.io/v1", APIResources: []metav1.APIResource{
		{Name: "routes", SingularName: "route", Kind: "Route", Namespaced: true},
	}},
	{GroupVersion: "other.io/v1", APIResources: []metav1.APIResource{
		{Name: "routes", SingularName: "route", Kind: "Route", Namespaced: true, ShortNames: []string{"rt"}},
	}},
}

// Resolver returns a Resolver over Resources.
func Resolver() *target.Resolver { return target.NewResolver(Resources, nil) }

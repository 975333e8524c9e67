package plugin

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/internal/version"
)

// Versions is what `version` prints: the plugin's, and what the server
// side runs, as far as it could be read.
type Versions struct {
	ClientVersion string `json:"clientVersion"`
	// KubernetesVersion is the API server's (GitVersion).
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Components are the release's webhook and orchestrator Deployments.
	Components []Component `json:"components,omitempty"`
	// Unreadable says what could not be read, and why.
	Unreadable []string `json:"unreadable,omitempty"`
}

// Component is one Deployment of the release.
type Component struct {
	Component  string   `json:"component"`
	Namespace  string   `json:"namespace"`
	Deployment string   `json:"deployment"`
	Version    string   `json:"version"`
	Images     []string `json:"images"`
}

// componentLabel and versionLabel are set by the chart on its Deployments.
const (
	componentLabel = "app.kubernetes.io/component"
	versionLabel   = "app.kubernetes.io/version"
)

// ReleaseComponents reads the webhook and orchestrator Deployments in
// namespace: their version label (the chart's appVersion) and images.
func ReleaseComponents(cmd *cobra.Command, c client.Reader, namespace string) ([]Component, error) {
	sel, err := labels.Parse(componentLabel + " in (webhook,orchestrator)")
	if err != nil {
		return nil, err
	}
	list := &appsv1.DeploymentList{}
	if err := c.List(cmd.Context(), list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing Deployments in %s: %w", namespace, err)
	}
	out := []Component{}
	for _, d := range list.Items {
		comp := Component{Component: d.Labels[componentLabel], Namespace: d.Namespace, Deployment: d.Name, Version: d.Labels[versionLabel]}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			comp.Images = append(comp.Images, ctr.Image)
		}
		out = append(out, comp)
	}
	slices.SortFunc(out, func(a, b Component) int {
		return cmp.Or(cmp.Compare(b.Component, a.Component), cmp.Compare(a.Deployment, b.Deployment))
	})
	return out, nil
}

func newVersionCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		clientOnly bool
		format     output
	)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and, as far as readable, the release's",
		Long: `Print the plugin's version (as --version does), then, unless --client, the
server side as far as it can be read: the Kubernetes version, and the
version (the chart's app.kubernetes.io/version label) and images of the
release's webhook and orchestrator Deployments in -n, the release's
namespace (default targetlock-system). What cannot be read (no permission,
no release there) is said, and is no error; an API server that cannot be
reached exits 3 after the client version is printed.`,
		Example: `  kubectl targetlock version
  kubectl targetlock version --client -o json
  kubectl targetlock version -n platform -o yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := format.validate(); err != nil || format == "wide" {
				return cmp.Or(err, usageError(fmt.Errorf("-o wide: want json or yaml")))
			}
			v := Versions{ClientVersion: version.Version}
			var err error
			if !clientOnly {
				err = serverVersions(cmd, flags, &v)
			}
			if perr := printVersions(streams.Out, format, v); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the plugin's version only; do not contact the API server")
	format.bind(cmd)
	return cmd
}

// serverVersions fills in what the API server tells; only an unreachable
// API server (or an unloadable kubeconfig) is an error.
func serverVersions(cmd *cobra.Command, flags *genericclioptions.ConfigFlags, v *Versions) error {
	c, err := newClient(flags)
	if err != nil {
		return err
	}
	dc, err := flags.ToDiscoveryClient()
	if err != nil {
		return usageError(err)
	}
	info, err := dc.ServerVersion()
	switch {
	case Unreachable(err):
		return err
	case err != nil:
		v.Unreadable = append(v.Unreadable, "Kubernetes version: "+err.Error())
	default:
		v.KubernetesVersion = info.GitVersion
	}
	ns := releaseNamespace(cmd, flags)
	comps, err := ReleaseComponents(cmd, c, ns)
	switch {
	case Unreachable(err):
		return err
	case err != nil:
		v.Unreadable = append(v.Unreadable, "release: "+err.Error())
	case len(comps) == 0:
		v.Unreadable = append(v.Unreadable, "release: no Deployment of a targetlock chart install in namespace "+ns+" (another -n?)")
	}
	v.Components = comps
	return nil
}

func printVersions(out io.Writer, format output, v Versions) error {
	if ok, err := format.structured(out, v); ok {
		return err
	}
	lines := []string{"Client Version: " + v.ClientVersion}
	if v.KubernetesVersion != "" {
		lines = append(lines, "Kubernetes Version: "+v.KubernetesVersion)
	}
	for _, c := range v.Components {
		lines = append(lines, fmt.Sprintf("%s Version: %s (Deployment %s/%s, image %s)", title(c.Component), dash(c.Version),
			c.Namespace, c.Deployment, strings.Join(c.Images, ", ")))
	}
	for _, u := range v.Unreadable {
		lines = append(lines, "Not shown: "+u)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(out, clean(l)); err != nil {
			return err
		}
	}
	return nil
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

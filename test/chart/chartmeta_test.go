package chart_test

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/yaml"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// repoFileURL is a link into this repository's main branch: the path is
// the file's in the repository.
var repoFileURL = regexp.MustCompile(`^https://(?:github\.com/targetlock/targetlock/blob|raw\.githubusercontent\.com/targetlock/targetlock)/main/(.+?)(?:#.*)?$`)

// Chart.yaml carries what chart indexes (Artifact Hub, helm search) show,
// and every link it makes into this repository names a file that exists.
func TestChartMetadata(t *testing.T) {
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	m := ch.Metadata
	if slices.Contains([]int{len(m.Home), len(m.Sources), len(m.Maintainers), len(m.Icon), len(m.Keywords)}, 0) {
		t.Errorf("Chart.yaml lacks home, sources, maintainers, icon or keywords: %+v", m)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range chartLinks(t, m.Home, m.Icon, m.Sources, m.Annotations["artifacthub.io/links"]) {
		if !strings.HasPrefix(l, "https://") {
			t.Errorf("%s: not an https URL", l)
		}
		if sub := repoFileURL.FindStringSubmatch(l); sub != nil {
			if _, err := os.Stat(filepath.Join(root, sub[1])); err != nil {
				t.Errorf("%s links to a file the repository lacks: %v", l, err)
			}
		}
	}
	sub := repoFileURL.FindStringSubmatch(m.Icon)
	if sub == nil {
		t.Fatalf("icon %s is not a file of this repository", m.Icon)
	}
	raw, err := os.ReadFile(filepath.Join(root, sub[1]))
	if err != nil {
		t.Fatal(err)
	}
	var svg struct{ XMLName xml.Name }
	if err := xml.Unmarshal(raw, &svg); err != nil || svg.XMLName.Local != "svg" {
		t.Errorf("icon is not an SVG image: %v %v", svg.XMLName, err)
	}
}

// chartLinks are every URL of Chart.yaml: home, icon, sources and the
// Artifact Hub links annotation.
func chartLinks(t *testing.T, home, icon string, sources []string, artifactHubLinks string) []string {
	t.Helper()
	links := append([]string{home, icon}, sources...)
	var extra []struct{ URL string }
	if err := yaml.Unmarshal([]byte(artifactHubLinks), &extra); err != nil || len(extra) == 0 {
		t.Errorf("artifacthub.io/links: %v %v", extra, err)
	}
	for _, l := range extra {
		links = append(links, l.URL)
	}
	return links
}

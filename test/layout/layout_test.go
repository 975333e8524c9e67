// Package layout checks that docs/design.md's table of parts matches the
// tree: a package added, moved or removed without the table fails here.
package layout

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// listedExactly are the trees where every Go package has its own row: the
// code that ships. Elsewhere (cmd/, test/, hack/) a row may cover a tree.
var listedExactly = []string{"api", "pkg", "internal"}

var backticked = regexp.MustCompile("`([^`]+)`")

func TestDesignTableMatchesTheTree(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	rows := partsTable(t, filepath.Join(root, "docs", "design.md"))
	for _, p := range rows {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("docs/design.md lists %s, which is not in the tree", p)
		}
	}
	for _, pkg := range goPackages(t, root) {
		if slices.Contains(rows, pkg) {
			continue
		}
		exact := slices.ContainsFunc(listedExactly, func(top string) bool { return strings.HasPrefix(pkg, top+"/") })
		covered := slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(pkg, r+"/") })
		if exact || !covered {
			t.Errorf("package %s has no row in docs/design.md's table of parts", pkg)
		}
	}
}

// partsTable returns the paths in the first column of the table under the
// heading "## 2. Parts".
func partsTable(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []string
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.HasPrefix(line, "## 2. Parts")
		case in && strings.HasPrefix(line, "| `"):
			first := strings.SplitN(line, "|", 3)[1]
			for _, m := range backticked.FindAllStringSubmatch(first, -1) {
				rows = append(rows, strings.TrimSuffix(m[1], "/"))
			}
		}
	}
	if len(rows) == 0 {
		t.Fatalf("no table of parts under \"## 2. Parts\" in %s", path)
	}
	return rows
}

// goPackages lists the directories holding Go files, relative to root.
func goPackages(t *testing.T, root string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (rel == "bin" || rel == "dist" || strings.HasPrefix(d.Name(), ".") && rel != ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && filepath.Dir(rel) != "." {
			seen[filepath.ToSlash(filepath.Dir(rel))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

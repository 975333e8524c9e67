// Command testalerts runs the chart's alerting rules through promtool: it
// renders the PrometheusRule with the helm CLI, writes its rule groups to a
// rules file, runs `promtool check rules` on it and `promtool test rules`
// on the unit tests (promtool's format) beside it, and prints
//
//	alerts: rules=N tests=N passed=N
//
// with N counted from the render, the test files and promtool's JUnit
// report. It fails when promtool does, when a test fails, and when an
// alert lacks a test where it fires or one where it stays quiet.
package main

import (
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// The release the test files are written for.
const (
	release   = "tl"
	namespace = "targetlock-system"
	rulesFile = "targetlock-rules.yaml"
)

func main() {
	helm := flag.String("helm", "helm", "helm CLI")
	promtool := flag.String("promtool", "promtool", "promtool")
	chart := flag.String("chart", "charts/targetlock", "chart directory")
	tests := flag.String("tests", "test/alerts/*.test.yaml", "promtool unit test files (glob)")
	flag.Parse()
	if err := run(*helm, *promtool, *chart, *tests); err != nil {
		fmt.Fprintln(os.Stderr, "alerts:", err)
		os.Exit(1)
	}
}

func run(helm, promtool, chart, glob string) error {
	files, err := filepath.Glob(glob)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no test files match %s", glob)
	}
	dir, err := os.MkdirTemp("", "alerts-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	alerts, err := renderRules(helm, chart, filepath.Join(dir, rulesFile))
	if err != nil {
		return err
	}
	if out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, rulesFile)).CombinedOutput(); err != nil {
		return fmt.Errorf("promtool check rules: %w\n%s", err, out)
	}
	cov, groups, err := coverage(files, dir)
	if err != nil {
		return err
	}
	passed, runErr := runTests(promtool, dir, files)
	fmt.Printf("alerts: rules=%d tests=%d passed=%d\n", len(alerts), groups, passed)
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if passed != groups {
		errs = append(errs, fmt.Errorf("%d of %d test groups passed", passed, groups))
	}
	for _, a := range alerts {
		if !cov[a].fires || !cov[a].quiet {
			errs = append(errs, fmt.Errorf("alert %s lacks a test where it fires (%t) or one where it stays quiet (%t)", a, cov[a].fires, cov[a].quiet))
		}
	}
	for a := range cov {
		if !slices.Contains(alerts, a) {
			errs = append(errs, fmt.Errorf("the tests check alert %s, which the chart does not define", a))
		}
	}
	return errors.Join(errs...)
}

// renderRules renders the chart's PrometheusRule and writes its spec (the
// rule groups, promtool's format) to path; it returns the alert names.
func renderRules(helm, chart, path string) ([]string, error) {
	out, err := exec.Command(helm, "template", release, chart, "-n", namespace,
		"--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/monitoring.yaml").Output()
	if err != nil {
		return nil, fmt.Errorf("helm template: %w", stderr(err))
	}
	var rule struct {
		Kind string
		Spec struct {
			Groups []struct {
				Rules []struct{ Alert string }
			}
		}
	}
	var spec map[string]any
	for _, doc := range strings.Split(string(out), "\n---\n") {
		if err := yaml.Unmarshal([]byte(doc), &rule); err != nil {
			return nil, err
		}
		if rule.Kind == "PrometheusRule" {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return nil, err
			}
			spec, _ = obj["spec"].(map[string]any)
			break
		}
	}
	if spec == nil {
		return nil, errors.New("the chart rendered no PrometheusRule")
	}
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	raw, err := yaml.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return alerts, os.WriteFile(path, raw, 0o600)
}

type covered struct{ fires, quiet bool }

// testFile is what coverage reads of promtool's test format.
type testFile struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name          string
		AlertRuleTest []struct {
			Alertname string
			ExpAlerts []any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	}
}

// coverage reads the test files, copies them into dir (beside the rendered
// rules, which they must name) and returns, per alert, whether a test
// expects it firing and one expects it quiet, and the number of test groups.
func coverage(files []string, dir string) (map[string]covered, int, error) {
	cov := map[string]covered{}
	groups := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, err
		}
		var tf testFile
		if err := yaml.Unmarshal(raw, &tf); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", f, err)
		}
		if !slices.Equal(tf.RuleFiles, []string{rulesFile}) {
			return nil, 0, fmt.Errorf("%s: rule_files must be [%s] (the rendered chart), not %v", f, rulesFile, tf.RuleFiles)
		}
		for _, tc := range tf.Tests {
			groups++
			for _, a := range tc.AlertRuleTest {
				c := cov[a.Alertname]
				if len(a.ExpAlerts) > 0 {
					c.fires = true
				} else {
					c.quiet = true
				}
				cov[a.Alertname] = c
			}
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), raw, 0o600); err != nil {
			return nil, 0, err
		}
	}
	return cov, groups, nil
}

// junit is what runTests reads of promtool's JUnit report.
type junit struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runTests runs promtool test rules on the copies of files in dir and
// returns how many test groups passed.
func runTests(promtool, dir string, files []string) (int, error) {
	args := []string{"test", "rules", "--junit", filepath.Join(dir, "junit.xml")}
	for _, f := range files {
		args = append(args, filepath.Join(dir, filepath.Base(f)))
	}
	cmd := exec.Command(promtool, args...)
	out, runErr := cmd.CombinedOutput()
	raw, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		return 0, errors.Join(fmt.Errorf("promtool test rules wrote no report: %w\n%s", runErr, out), err)
	}
	var report junit
	if err := xml.Unmarshal(raw, &report); err != nil {
		return 0, err
	}
	passed := 0
	var failed []string
	for _, s := range report.Suites {
		for _, c := range s.Cases {
			if c.Failure == nil {
				passed++
			} else {
				failed = append(failed, fmt.Sprintf("%s: %s: %s", filepath.Base(s.Name), c.Name, c.Failure.Message))
			}
		}
	}
	sort.Strings(failed)
	if runErr == nil && len(failed) > 0 {
		runErr = errors.New("a test failed")
	}
	if runErr != nil {
		return passed, fmt.Errorf("promtool test rules: %w\n%s%s", runErr, out, strings.Join(failed, "\n"))
	}
	return passed, nil
}

func stderr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}

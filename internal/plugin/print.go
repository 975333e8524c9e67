package plugin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// output is the -o flag: "" (a table), wide, json or yaml.
type output string

func (o *output) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP((*string)(o), "output", "o", "", "output format: wide, json or yaml (default: a table)")
}

func (o output) validate() error {
	switch o {
	case "", "wide", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown output format %q: want wide, json or yaml", string(o))
}

// structured writes v as JSON or YAML; ok is false for a table format.
func (o output) structured(out io.Writer, v any) (ok bool, err error) {
	switch o {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = out.Write(b)
		return true, err
	}
	return false, nil
}

// columns are a listing's table columns: those every table shows and those
// only -o wide adds.
type columns struct{ normal, wide []string }

// printItems writes items in format: JSON, YAML, or a table of one row per
// item (the row's wide columns only with -o wide). An empty table is the
// line none.
func printItems[T any](out io.Writer, format output, items []T, none string, header columns, row func(T) columns) error {
	if ok, err := format.structured(out, items); ok {
		return err
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(out, none)
		return err
	}
	wide := func(c columns) []string {
		if format == "wide" {
			return append(c.normal, c.wide...)
		}
		return c.normal
	}
	rows := make([][]string, 0, len(items))
	for _, item := range items {
		rows = append(rows, wide(row(item)))
	}
	return table(out, wide(header), rows)
}

// table writes rows under a header with kubectl's spacing, every cell
// cleaned: it is the plugin's only human output, and every string in it
// (holders, targets, Event notes) was written by someone else.
func table(out io.Writer, header []string, rows [][]string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = clean(c)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

// clean neutralises what an object's author could aim at the admin's
// terminal: control characters (escape sequences, tabs, newlines) and
// invisible format characters (bidirectional overrides) become "?".
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

func dash(s string) string { return cmp.Or(s, "-") }

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

// output is certs verify's -o flag: "" (a table), wide, json or yaml.
type output string

func (o *output) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP((*string)(o), "output", "o", "", "output format: wide, json or yaml (default: a table)")
}

func (o output) validate() error {
	switch o {
	case "", "wide", "json", "yaml":
		return nil
	}
	return usageError(fmt.Errorf("unknown output format %q: want wide, json or yaml", string(o)))
}

// structured writes v as JSON or YAML; ok is false for a table format.
func (o output) structured(out io.Writer, v any) (ok bool, err error) {
	switch o {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "    ")
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

// PrintOptions say how a listing (locks, denials) prints.
type PrintOptions struct {
	// Output is "" (a table), wide (more columns), name (kind.group/name
	// of each row's object, one a line), json or yaml (a v1 List).
	Output string
	// NoHeaders drops the table's header line.
	NoHeaders bool
	// AllNamespaces adds the NAMESPACE column to tables, as kubectl -A does.
	AllNamespaces bool
}

func (p *PrintOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&p.Output, "output", "o", "", "output format: wide (more columns), name (the objects' kind.group/name), json or yaml (a v1 List); default a table")
	f.BoolVar(&p.NoHeaders, "no-headers", false, "print tables (default and -o wide) without the header line")
}

func (p PrintOptions) validate() error {
	switch p.Output {
	case "", "wide", "name", "json", "yaml":
		return nil
	}
	return usageError(fmt.Errorf("unknown output format %q: want wide, name, json or yaml", p.Output))
}

// List is what -o json and -o yaml print, as kubectl does for lists: a
// v1 List whose items are the listing's rows.
type List[T any] struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ListMetadata `json:"metadata"`
	Items      []T          `json:"items"`
}

// ListMetadata is a List's metadata, empty as kubectl prints it.
type ListMetadata struct {
	ResourceVersion string `json:"resourceVersion"`
}

// NewList wraps items in a v1 List ("items": [] when there are none).
func NewList[T any](items []T) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{APIVersion: "v1", Kind: "List", Items: items}
}

// columns are a listing's table columns: those every table shows and those
// only -o wide adds.
type columns struct{ normal, wide []string }

// view is how one listing prints, whatever its rows came from: the
// header, a row's cells, its object's name (-o name) and namespace (-A).
type view[T any] struct {
	none      string
	header    columns
	row       func(T) columns
	name      func(T) string
	namespace func(T) string
}

// print writes items as p says: the one printing path of every listing.
// An empty table is the line none.
func (v view[T]) print(out io.Writer, p PrintOptions, items []T) error {
	if ok, err := output(p.Output).structured(out, NewList(items)); ok {
		return err
	}
	if p.Output == "name" {
		for _, item := range items {
			if _, err := fmt.Fprintln(out, clean(v.name(item))); err != nil {
				return err
			}
		}
		return nil
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(out, v.none)
		return err
	}
	cells := func(c columns, ns string) []string {
		r := c.normal
		if p.Output == "wide" {
			r = append(r, c.wide...)
		}
		if p.AllNamespaces {
			r = append([]string{ns}, r...)
		}
		return r
	}
	rows := make([][]string, 0, len(items)+1)
	if !p.NoHeaders {
		rows = append(rows, cells(v.header, "NAMESPACE"))
	}
	for _, item := range items {
		rows = append(rows, cells(v.row(item), v.namespace(item)))
	}
	return writeTable(out, rows)
}

// table writes rows under a header with kubectl's spacing, every cell
// cleaned.
func table(out io.Writer, header []string, rows [][]string) error {
	return writeTable(out, append([][]string{header}, rows...))
}

// writeTable writes rows with kubectl's spacing, every cell cleaned: it is
// the plugin's only human output, and every string in it (holders,
// targets, Event notes) was written by someone else.
func writeTable(out io.Writer, rows [][]string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
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

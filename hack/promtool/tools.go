//go:build tools

// Package tools pins promtool, which `make test-alerts` runs on the chart's
// alerting rules (promtool check rules, promtool test rules). It is a module
// of its own so that Prometheus's dependencies stay out of the root module.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"

package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// writeText prints the report as a table.
func writeText(w io.Writer, r *Report) error {
	var b strings.Builder
	switch r.Model {
	case "closed":
		fmt.Fprintf(&b, "target %s, closed model: %d users, %.0f s\n", r.Target, r.Users, r.Duration)
	default:
		rate := fmt.Sprintf("%.1f/s", r.TargetRate)
		if r.RampTo > 0 {
			rate = fmt.Sprintf("ramp %.1f/s → %.1f/s", r.TargetRate, r.RampTo)
		}
		fmt.Fprintf(&b, "target %s, open model: %s for %.0f s\n", r.Target, rate, r.Duration)
	}
	fmt.Fprintf(&b, "started %d (%.1f/s), completed %d in %.1f s (%.1f/s achieved), %d HTTP requests (%.1f/s), %d customers\n",
		r.Started, r.StartedRate, r.Completed, r.Elapsed, r.Achieved, r.Requests, r.RequestRate, r.Customers)
	fmt.Fprintf(&b, "latency from each operation's intended start, in ms\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tok\trejected\terrors\tp50\tp90\tp99\tp99.9\tmax\t")
	line := func(o OpReport) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", o.Name, o.Count, o.OK, o.Rejected, o.Errors,
			o.Latency.P50, o.Latency.P90, o.Latency.P99, o.Latency.P999, o.Latency.Max)
	}
	for _, o := range r.Ops {
		line(o)
	}
	line(r.Overall)
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Overall.Errors > 0 {
		fmt.Fprintf(&b, "\nerrors by kind (%.2f%% of operations):\n", 100*r.ErrorRate())
		for _, o := range append(append([]OpReport(nil), r.Ops...), r.Overall) {
			kinds := make([]string, 0, len(o.ByKind))
			for k := range o.ByKind {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			for _, k := range kinds {
				fmt.Fprintf(&b, "  %-14s %-16s %d\n", o.Name, k, o.ByKind[k])
			}
		}
	}
	fmt.Fprintf(&b, "\ntransfers acknowledged %d, outcome unknown %d\n", r.Transfers, r.Unknown)
	if m := r.Money; m != nil {
		verdict := "PASSED"
		if !m.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "money check %s: %d customers hold %s, were sent %s; %d acknowledged transfers, %d missing from history, %d duplicated; %d unacknowledged in history\n",
			verdict, m.Customers, formatMinor(m.Actual), formatMinor(m.Expected), m.Acknowledged, m.NotInHistory, m.Duplicated, m.Unacknowledged)
		for _, p := range m.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// plot is one inline SVG line chart.
type plot struct {
	Title  string
	Unit   string
	Max    float64
	Width  int
	Height int
	Lines  []plotLine
	XTicks []plotTick
	YTicks []plotTick
}

type plotLine struct {
	Name, Color string
	Points      string // SVG polyline points
	LegendY     int
}

type plotTick struct {
	Pos   float64
	Label string
}

const (
	plotW, plotH = 720, 240
	plotLeft     = 56
	plotBottom   = 28
)

// newPlot scales series (one value per second) into an SVG's coordinates.
func newPlot(title, unit string, names, colors []string, series [][]float64) plot {
	p := plot{Title: title, Unit: unit, Width: plotW, Height: plotH}
	n := 0
	for _, s := range series {
		n = max(n, len(s))
		for _, v := range s {
			p.Max = max(p.Max, v)
		}
	}
	if p.Max == 0 {
		p.Max = 1
	}
	p.Max *= 1.1
	iw, ih := float64(plotW-plotLeft-8), float64(plotH-plotBottom-8)
	x := func(i int) float64 {
		if n <= 1 {
			return plotLeft
		}
		return plotLeft + iw*float64(i)/float64(n-1)
	}
	y := func(v float64) float64 { return 8 + ih*(1-v/p.Max) }
	for k, s := range series {
		var b strings.Builder
		for i, v := range s {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(v))
		}
		p.Lines = append(p.Lines, plotLine{Name: names[k], Color: colors[k], Points: b.String(), LegendY: 20 + 14*k})
	}
	for i := 0; i <= 4; i++ {
		v := p.Max * float64(i) / 4
		p.YTicks = append(p.YTicks, plotTick{Pos: y(v), Label: fmt.Sprintf("%.3g", v)})
	}
	step := max(1, n/8)
	for i := 0; i < n; i += step {
		p.XTicks = append(p.XTicks, plotTick{Pos: x(i), Label: fmt.Sprintf("%ds", i)})
	}
	return p
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"money": formatMinor,
	"sub":   func(a, b int) int { return a - b },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bankwire load report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1b2430}
table{border-collapse:collapse;margin:1rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #dde}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b3261e}.good{color:#1b7f3b}
svg{background:#fafbfd;border:1px solid #e3e6ee;margin:.5rem 0}text{font-size:11px;fill:#555}
</style></head><body>
<h1>bankwire load report</h1>
<p>Target {{.R.Target}}, {{if eq .R.Model "closed"}}closed model, {{.R.Users}} users{{else}}open model, {{.R.TargetRate}}/s{{if .R.RampTo}} rising to {{.R.RampTo}}/s{{end}}{{end}}, {{printf "%.0f" .R.Duration}} s.
Started {{.R.Started}} ({{printf "%.1f" .R.StartedRate}}/s), completed {{.R.Completed}} ({{printf "%.1f" .R.Achieved}}/s achieved),
{{.R.Requests}} HTTP requests ({{printf "%.1f" .R.RequestRate}}/s). Latency runs from each operation's intended start.</p>
<table><thead><tr><th>operation</th><th class="n">count</th><th class="n">ok</th><th class="n">rejected</th><th class="n">errors</th>
<th class="n">p50 ms</th><th class="n">p90 ms</th><th class="n">p99 ms</th><th class="n">p99.9 ms</th><th class="n">max ms</th><th>errors by kind</th></tr></thead><tbody>
{{range .Rows}}<tr><td>{{.Name}}</td><td class="n">{{.Count}}</td><td class="n">{{.OK}}</td><td class="n">{{.Rejected}}</td><td class="n{{if .Errors}} bad{{end}}">{{.Errors}}</td>
<td class="n">{{printf "%.1f" .Latency.P50}}</td><td class="n">{{printf "%.1f" .Latency.P90}}</td><td class="n">{{printf "%.1f" .Latency.P99}}</td><td class="n">{{printf "%.1f" .Latency.P999}}</td><td class="n">{{printf "%.1f" .Latency.Max}}</td>
<td>{{range $k, $v := .ByKind}}{{$k}}: {{$v}} {{end}}</td></tr>
{{end}}</tbody></table>
{{range $p := .Plots}}
<h2>{{.Title}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
{{range .YTicks}}<line x1="56" x2="{{sub $p.Width 8}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#e6e8ef"/><text x="50" y="{{.Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .XTicks}}<text x="{{.Pos}}" y="{{sub $p.Height 10}}" text-anchor="middle">{{.Label}}</text>{{end}}
{{range .Lines}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"/>
<text x="{{sub $p.Width 120}}" y="{{.LegendY}}" fill="{{.Color}}">{{.Name}}</text>{{end}}
<text x="8" y="16">{{.Unit}}</text>
</svg>
{{end}}
<h2>Money</h2>
<p>Transfers acknowledged: {{.R.Transfers}}; outcome unknown: {{.R.Unknown}}.</p>
{{with .R.Money}}<p class="{{if .Passed}}good{{else}}bad{{end}}">Money check {{if .Passed}}passed{{else}}failed{{end}}:
{{.Customers}} customers hold {{money .Actual}} and were sent {{money .Expected}};
{{.Acknowledged}} acknowledged transfers, {{.NotInHistory}} missing from history, {{.Duplicated}} duplicated; {{.Unacknowledged}} unacknowledged in history.</p>
{{if .Problems}}<ul>{{range .Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}{{else}}<p>The money check was not run.</p>{{end}}
</body></html>
`))

// writeHTML writes a self-contained report: no script, no outside files.
func writeHTML(w io.Writer, r *Report) error {
	var p50, p99, done, errs []float64
	for _, s := range r.Timeline {
		p50, p99 = append(p50, s.P50), append(p99, s.P99)
		done, errs = append(done, float64(s.Throughput)), append(errs, float64(s.Errors))
	}
	data := struct {
		R     *Report
		Rows  []OpReport
		Plots []plot
	}{
		R: r, Rows: append(append([]OpReport(nil), r.Ops...), r.Overall),
		Plots: []plot{
			newPlot("Latency over time", "ms", []string{"p50", "p99"}, []string{"#2f6fde", "#d9480f"}, [][]float64{p50, p99}),
			newPlot("Throughput over time", "operations per second", []string{"completed", "errors"}, []string{"#1b7f3b", "#b3261e"}, [][]float64{done, errs}),
		},
	}
	return htmlReport.Execute(w, data)
}

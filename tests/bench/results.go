package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// metric is one figure over the runs of a scenario.
type metric struct {
	Scenario string    `json:"scenario"`
	Name     string    `json:"name"`
	Unit     string    `json:"unit"`
	Values   []float64 `json:"values"` // one per run
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	// Target is checked on the median: ">=" or "<=" Goal.
	Op   string  `json:"op,omitempty"`
	Goal float64 `json:"goal,omitempty"`
	Pass *bool   `json:"pass,omitempty"`
	Note string  `json:"note,omitempty"`
}

func (m *metric) finish() {
	if len(m.Values) == 0 {
		return
	}
	m.Median, m.Min, m.Max = median(m.Values), slices.Min(m.Values), slices.Max(m.Values)
	if m.Op != "" {
		ok := meets(m.Median, m.Op, m.Goal)
		m.Pass = &ok
	}
}

// goalTolerance: a median within this relative distance of the goal is
// taken as the goal. A ratio of two equal readings, each divided by its
// own row count first, lands a few ulps off 1 (1.0000000000000029 read
// "<= 1: MISSED").
const goalTolerance = 1e-9

// meets reports whether v meets the target "op goal".
func meets(v float64, op string, goal float64) bool {
	if math.Abs(v-goal) <= goalTolerance*math.Max(1, math.Abs(goal)) {
		v = goal
	}
	switch op {
	case "<=":
		return v <= goal
	case ">":
		return v > goal
	case "==":
		return v == goal
	}
	return v >= goal
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

func mean(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

// series builds metrics run by run.
type series struct {
	ms []*metric
}

func (s *series) add(name, unit string) *metric {
	m := &metric{Name: name, Unit: unit}
	s.ms = append(s.ms, m)
	return m
}

func (s *series) target(name, unit, op string, goal float64) *metric {
	m := s.add(name, unit)
	m.Op, m.Goal = op, goal
	return m
}

func (s *series) out() []metric {
	out := make([]metric, 0, len(s.ms))
	for _, m := range s.ms {
		if len(m.Values) > 0 {
			out = append(out, *m)
		}
	}
	return out
}

// push records one run's value; NaN and infinities (nothing measured) are
// left out.
func (m *metric) push(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	m.Values = append(m.Values, v)
}

type results struct {
	Command  string         `json:"command"`
	Machine  machine        `json:"machine"`
	Started  string         `json:"started"`
	Seconds  float64        `json:"seconds"`
	Load     []scenarioLoad `json:"load"`
	Metrics  []metric       `json:"metrics"`
	Failures []string       `json:"failures,omitempty"`
}

// scenarioLoad is the machine's 1-minute load average as a scenario began
// and ended (on 2 cores, anything much above 3 means other work competed).
type scenarioLoad struct {
	Scenario string  `json:"scenario"`
	Start    float64 `json:"start"`
	End      float64 `json:"end"`
	Seconds  float64 `json:"seconds"`
}

func (r results) loadLine() string {
	parts := make([]string, len(r.Load))
	for i, l := range r.Load {
		parts[i] = fmt.Sprintf("%s %.1f→%.1f (%.0fs)", l.Scenario, l.Start, l.End, l.Seconds)
	}
	return "1-minute load average per scenario: " + strings.Join(parts, ", ")
}

// format prints a value with about four significant digits.
func format(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && a < 1e7:
		return fmt.Sprintf("%.0f", v)
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func (m metric) targetText() string {
	if m.Op == "" {
		return ""
	}
	return m.Op + " " + format(m.Goal)
}

func (m metric) verdict() string {
	switch {
	case m.Pass == nil:
		return ""
	case *m.Pass:
		return "ok"
	}
	return "MISSED"
}

func (r results) rows() [][]string {
	out := [][]string{{"scenario", "metric", "median", "min", "max", "unit", "target", ""}}
	for _, m := range r.Metrics {
		out = append(out, []string{m.Scenario, m.Name, format(m.Median), format(m.Min), format(m.Max), m.Unit, m.targetText(), m.verdict()})
	}
	return out
}

// table is the plain-text table printed at the end.
func (r results) table() string {
	rows := r.rows()
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, c := range row {
			pad := width[i] - len([]rune(c))
			if i >= 2 && i <= 4 {
				b.WriteString(strings.Repeat(" ", pad) + c)
			} else {
				b.WriteString(c + strings.Repeat(" ", pad))
			}
			b.WriteString("  ")
		}
		b.WriteString("\n")
	}
	for _, m := range r.Metrics {
		if m.Note != "" {
			fmt.Fprintf(&b, "\n- %s / %s: %s", m.Scenario, m.Name, m.Note)
		}
	}
	fmt.Fprintf(&b, "\n\n%s; %d cores, %s RAM; %s; %s; %.0fs\n%s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.Memory, r.Machine.Kernel, r.Machine.Go, r.Seconds, r.loadLine())
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAILED: %s\n", f)
	}
	return b.String()
}

// markdown is the generated section of BENCHMARKS.md.
func (r results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` (%s, %.0f s)\n\n", r.Command, r.Started, r.Seconds)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s RAM, %s, %s\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.Memory, r.Machine.Kernel, r.Machine.Go)
	fmt.Fprintf(&b, "%s\n\n", r.loadLine())
	rows := r.rows()
	b.WriteString("| " + strings.Join(rows[0], " | ") + " |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|---|\n")
	for _, row := range rows[1:] {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	notes := false
	for _, m := range r.Metrics {
		if m.Note != "" {
			if !notes {
				b.WriteString("\n")
				notes = true
			}
			fmt.Fprintf(&b, "- %s / %s: %s\n", m.Scenario, m.Name, m.Note)
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "\nFAILED: %s\n", f)
	}
	return b.String()
}

const (
	mdBegin = "<!-- bench:begin (generated by go run ./tests/bench -md BENCHMARKS.md) -->"
	mdEnd   = "<!-- bench:end -->"
)

// updateMarkdown replaces the generated section of path (or appends one).
func updateMarkdown(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	block := mdBegin + "\n" + section + mdEnd
	i, j := strings.Index(text, mdBegin), strings.Index(text, mdEnd)
	if i >= 0 && j > i {
		text = text[:i] + block + text[j+len(mdEnd):]
	} else {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

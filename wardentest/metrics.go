package wardentest

import (
	"bufio"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/stack"
)

// Metrics registers every part's metrics on reg, the core's, the
// recorder's and the governor's, as `warden serve` does.
func Metrics(reg *prometheus.Registry) Option {
	return func(c *stack.Config) {
		c.Core.Metrics = engine.NewMetrics(reg)
		c.Recorder.Registry, c.Governor.Registry = reg, reg
	}
}

// MustGather returns every sample reg holds, keyed as the Prometheus text
// format writes a series: name{label="value",…} with labels sorted by name
// (just name without labels). Histograms and summaries are left out.
func MustGather(tb testing.TB, reg prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			slices.Sort(labels)
			key := f.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// ParseMetrics reads the Prometheus text format (a /metrics body) into the
// keys MustGather uses; histogram and summary lines come along as written.
func ParseMetrics(tb testing.TB, text string) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			tb.Fatalf("not a sample line: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// SumMetric adds every series of the metric name in samples.
func SumMetric(samples map[string]float64, name string) float64 {
	var sum float64
	for k, v := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}

// Series is the key of a series of name with labels given as name, value
// pairs, as MustGather and ParseMetrics key it.
func Series(name string, labels ...string) string {
	var ls []string
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	if len(ls) == 0 {
		return name
	}
	slices.Sort(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

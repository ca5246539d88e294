package coordinator

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sportsintel/enrich/coordinator/config"
)

// descRecorder is a Registerer that only records the names of the metrics registered with it.
type descRecorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

// The example alert rules must parse and may only use metrics the coordinator exports (plus
// Prometheus's own `up`), so renaming a metric without fixing the rules fails here.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	rec := &descRecorder{names: map[string]bool{}}
	srv := New(config.Default(), nil, hclog.NewNullLogger(), prometheus.NewRegistry())
	rec.MustRegister(newFleetCollector(srv))
	newMetrics(rec)
	require.Contains(t, rec.names, "enrich_results_total", "the recorder sees the coordinator's metrics")

	raw, err := os.ReadFile(filepath.Join("..", "docs", "alerts.yml"))
	require.NoError(t, err)
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&doc))

	var alerts []string
	metricRef := regexp.MustCompile(`\b(enrich_[a-z_]+|up)\b`)
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.NotEmpty(t, r.Labels["severity"], "%s has a severity", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s has a summary", r.Alert)
			require.Equal(t, strings.Count(r.Expr, "("), strings.Count(r.Expr, ")"), "%s: unbalanced parentheses", r.Alert)
			refs := metricRef.FindAllString(r.Expr, -1)
			require.NotEmpty(t, refs, "%s references no metric", r.Alert)
			for _, name := range refs {
				if name == "up" {
					continue
				}
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				require.True(t, rec.names[name] || rec.names[base], "%s uses %s, which the coordinator does not export", r.Alert, name)
			}
		}
	}
	for _, want := range []string{"EnrichCoordinatorDown", "EnrichNoAgentForPendingWork", "EnrichFailureRateHigh", "EnrichBatchStalled"} {
		require.True(t, slices.Contains(alerts, want), "missing alert %s", want)
	}
}

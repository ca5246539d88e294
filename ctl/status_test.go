package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func runningBatch() *enrichv1.Batch {
	return &enrichv1.Batch{
		Id:         "20260108-120000-1a2b3c",
		State:      enrichv1.BatchState_BATCH_STATE_RUNNING,
		Source:     "teams.csv",
		CreatedAt:  timestamppb.New(time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)),
		LaunchedAt: timestamppb.New(time.Date(2026, 1, 8, 13, 0, 1, 0, time.FixedZone("CET", 3600))),
		OutputDir:  "dossiers/parallel_batch_20260108T120000Z",
		Instances: []*enrichv1.InstanceProgress{
			{InstanceType: "entities", Total: 50, Succeeded: 12, Failed: 1, Leased: 4, Pending: 33, Retrying: 2, Agents: 2,
				Slots: 8, DurationP50: durationpb.New(42 * time.Second), Eta: durationpb.New(185 * time.Second), CostUsd: 1.5,
				Attempts: 16, FailedAttempts: 3},
			{InstanceType: "leagues", Total: 15, Pending: 15, WaitingForAgent: true},
		},
	}
}

func TestWriteBatch(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	require.NoError(t, writeBatch(&out, runningBatch()))
	text := out.String()

	require.Contains(t, text, "state          running\n")
	require.Contains(t, text, "created        2026-01-08T12:00:00Z\n")
	require.Contains(t, text, "launched       2026-01-08T12:00:01Z\n", "times print in UTC")
	require.Contains(t, text, "finished       -\n")
	require.Contains(t, text,
		"TYPE      TOTAL  DONE  FAILED  IN-FLIGHT  PENDING  RETRYING  SKIPPED  CANCELLED  AGENTS  SLOTS  P50  ETA    ERRORS  COST\n"+
			"entities  50     12    1       4          33       2         0        0          2       8      42s  3m10s  19%     $1.50\n"+
			"leagues   15     0     0       0          15       0         0        0          0       0      -    -      -       $0.00\n"+
			"waiting for an agent serving \"leagues\"\n")
	require.Equal(t, 1, strings.Count(text, "waiting for an agent"), "only the instance type without agents waits")
}

// The consolidation line says where a batch's outputs stand: not yet due, pending, done, or
// failed with the reason and whether the coordinator will try again by itself.
func TestConsolidationLine(t *testing.T) {
	t.Parallel()

	line := func(b *enrichv1.Batch) string {
		var out bytes.Buffer
		require.NoError(t, writeBatch(&out, b))
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "consolidation ") {
				return strings.TrimSpace(strings.TrimPrefix(l, "consolidation "))
			}
		}
		t.Fatalf("no consolidation line in:\n%s", out.String())
		return ""
	}
	b := runningBatch()
	require.Equal(t, "-", line(b), "a running batch has nothing to consolidate yet")

	b.State = enrichv1.BatchState_BATCH_STATE_COMPLETED
	require.Equal(t, "pending", line(b))

	b.ConsolidationError = "graph: write entities (chunk 1 of 2): neo4j unavailable after 2m0s of retries:\nConnectivityError"
	b.ConsolidationRetryAt = timestamppb.New(time.Date(2026, 1, 8, 14, 0, 0, 0, time.UTC))
	require.Equal(t, "failed: graph: write entities (chunk 1 of 2): neo4j unavailable after 2m0s of retries: ConnectivityError "+
		"(results are kept; the coordinator tries again at 2026-01-08T14:00:00Z)", line(b))

	b.ConsolidationRetryAt = nil
	require.Equal(t, "failed: graph: write entities (chunk 1 of 2): neo4j unavailable after 2m0s of retries: ConnectivityError "+
		"(results are kept; run: enrichctl consolidate 20260108-120000-1a2b3c)", line(b))

	b.ConsolidationError = ""
	b.ConsolidatedAt = timestamppb.New(time.Date(2026, 1, 8, 14, 5, 0, 0, time.UTC))
	require.Equal(t, "done 2026-01-08T14:05:00Z", line(b))
}

func TestStatusNewestBatch(t *testing.T) {
	t.Parallel()

	addr := startFakeServer(t, &fakeControlServer{
		ListBatchesFunc: func(_ context.Context, req *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error) {
			if req.GetLimit() != 1 {
				t.Errorf("status without BATCH lists %d batches, want 1", req.GetLimit())
			}
			return &enrichv1.ListBatchesResponse{Batches: []*enrichv1.Batch{runningBatch()}}, nil
		},
	})
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--addr", addr, "status"}, &stdout, &stderr)

	require.Equal(t, ExitOK, code, stderr.String())
	require.Contains(t, stdout.String(), "batch          20260108-120000-1a2b3c\n")
	require.Contains(t, stdout.String(), "waiting for an agent serving \"leagues\"\n")
}

func TestLastLines(t *testing.T) {
	t.Parallel()

	require.Equal(t, "c\nd", lastLines("a\nb\nc\nd\n\n", 2))
	require.Equal(t, "only", lastLines("only", 10))
	require.Empty(t, lastLines("", 10))
}

func TestLineRendererRateLimit(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	now := time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC)
	r := &lineRenderer{p: &printer{out: &out, now: func() time.Time { return now }}}
	b := runningBatch()

	require.NoError(t, r.update(b))
	now = now.Add(300 * time.Millisecond)
	b2 := runningBatch()
	b2.Instances[0].Succeeded = 13
	require.NoError(t, r.update(b2))
	require.NoError(t, r.tick())
	require.Equal(t, 1, strings.Count(out.String(), " running "), "a second update within a second is held back")

	now = now.Add(time.Second)
	require.NoError(t, r.tick())
	require.Contains(t, out.String(), "2026-01-08T12:00:01Z running entities 14/50 ok=13", "the held update prints once the second has passed")

	b3 := runningBatch()
	b3.State = enrichv1.BatchState_BATCH_STATE_CANCELLED
	require.NoError(t, r.update(b3))
	require.Contains(t, out.String(), "2026-01-08T12:00:01Z cancelled ", "a state change prints at once")
	require.Equal(t, 1, strings.Count(out.String(), "waiting for an agent serving \"leagues\""), "the note prints when waiting starts, not on every line")
}

package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestRewriteLineRefs(t *testing.T) {
	t.Parallel()

	msg := "line 17: unknown entity type \"Stadium\" (known: Club, League)\n" +
		"line 203: duplicate id \"x\" (first at line 4)\n" +
		"... and 3 more"
	require.Equal(t,
		"teams.csv:17: unknown entity type \"Stadium\" (known: Club, League)\n"+
			"teams.csv:203: duplicate id \"x\" (first at line 4)\n"+
			"... and 3 more",
		rewriteLineRefs("teams.csv", msg))

	// Only a line's own prefix names a file line; text elsewhere is the server's.
	require.Equal(t, "no entities: the batch would be empty", rewriteLineRefs("f.csv", "no entities: the batch would be empty"))
	require.Equal(t, "name mentions line 3: here", rewriteLineRefs("f.csv", "name mentions line 3: here"))
}

type prepareBundle struct {
	addr string
	file string

	mu  sync.Mutex
	req *enrichv1.PrepareBatchRequest
}

func setupPrepare(t *testing.T, prepareFunc func(context.Context, *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error)) *prepareBundle {
	t.Helper()
	b := &prepareBundle{file: filepath.Join(t.TempDir(), "teams.csv")}
	require.NoError(t, os.WriteFile(b.file, []byte("id,type,name\nclub-a,Club,A\nleague-b,League,B\nlg-c,League,C\n"), 0o600))
	fake := &fakeControlServer{PrepareBatchFunc: func(ctx context.Context, req *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
		b.mu.Lock()
		b.req = req
		b.mu.Unlock()
		return prepareFunc(ctx, req)
	}}
	b.addr = startFakeServer(t, fake)
	return b
}

func (b *prepareBundle) request() *enrichv1.PrepareBatchRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.req
}

func TestPrepareCommand(t *testing.T) {
	t.Parallel()

	t.Run("StdoutHoldsOnlyTheBatchID", func(t *testing.T) {
		t.Parallel()
		b := setupPrepare(t, func(_ context.Context, req *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
			return &enrichv1.PrepareBatchResponse{
				Batch: &enrichv1.Batch{Id: "20260108-120000-1a2b3c", State: enrichv1.BatchState_BATCH_STATE_PREPARED, Instances: []*enrichv1.InstanceProgress{
					{InstanceType: "entities", Total: 1, Pending: 1},
					{InstanceType: "leagues", Total: 1, Pending: 1},
				}},
				LeftOut: map[string]int32{"leagues": 1},
			}, nil
		})
		var stdout, stderr bytes.Buffer
		code := Main([]string{"--addr", b.addr, "prepare", "--from", b.file, "--priority", "high", "--instance3=1", "--size", "10"}, &stdout, &stderr)

		require.Equal(t, ExitOK, code, stderr.String())
		require.Equal(t, "20260108-120000-1a2b3c\n", stdout.String())
		require.Contains(t, stderr.String(), "entities 1, leagues 1")
		require.Contains(t, stderr.String(), "leagues: 1 entities left out (batch capacity 1)")

		req := b.request()
		require.Len(t, req.GetEntities(), 3)
		require.Equal(t, b.file, req.GetSource())
		require.Equal(t, int32(10), req.GetSize())
		require.Equal(t, enrichv1.Priority_PRIORITY_HIGH, req.GetDefaultPriority())
		require.Equal(t, map[string]int32{"3": 1}, req.GetCapacity(), "only the capacity flags given are sent")
	})

	t.Run("ServerLineErrorsNameTheFile", func(t *testing.T) {
		t.Parallel()
		b := setupPrepare(t, func(context.Context, *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
			return nil, status.Error(codes.InvalidArgument, "line 3: unknown entity type \"Stadium\" (known: Club)\nline 4: missing name")
		})
		var stdout, stderr bytes.Buffer
		code := Main([]string{"--addr", b.addr, "prepare", "--from", b.file}, &stdout, &stderr)

		require.Equal(t, ExitFailure, code)
		require.Empty(t, stdout.String())
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		require.Equal(t, []string{
			"enrichctl: InvalidArgument:",
			b.file + ":3: unknown entity type \"Stadium\" (known: Club)",
			b.file + ":4: missing name",
		}, lines)
	})

	t.Run("FileErrorsPrintAsIs", func(t *testing.T) {
		t.Parallel()
		b := setupPrepare(t, func(context.Context, *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
			t.Error("a file the parser refuses must not reach the coordinator")
			return nil, status.Error(codes.Internal, "unreachable")
		})
		bad := filepath.Join(t.TempDir(), "bad.csv")
		require.NoError(t, os.WriteFile(bad, []byte("id,type,name\nx,,X\n"), 0o600))
		var stdout, stderr bytes.Buffer
		code := Main([]string{"--addr", b.addr, "prepare", "--from", bad}, &stdout, &stderr)

		require.Equal(t, ExitFailure, code)
		require.Empty(t, stdout.String())
		require.True(t, strings.HasPrefix(stderr.String(), bad+":2: "), stderr.String())
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"prepare"},
			{"prepare", "--from", "f.csv", "--priority", "urgent"},
			{"prepare", "--from", "f.csv", "--size", "ten"},
			{"prepare", "--from", "f.csv", "extra"},
			{"-o", "yaml", "prepare", "--from", "f.csv"},
		} {
			var stdout, stderr bytes.Buffer
			require.Equal(t, ExitUsage, Main(append([]string{"--addr", "127.0.0.1:1"}, args...), &stdout, &stderr), "%v: %s", args, stderr.String())
		}
	})
}

func TestUnavailableHint(t *testing.T) {
	t.Parallel()

	// Port 1 on loopback: nothing listens there.
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--addr", "127.0.0.1:1", "--timeout", "5s", "batches"}, &stdout, &stderr)

	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr.String(), "enrichctl: Unavailable: ")
	require.Contains(t, stderr.String(), "is the coordinator running at 127.0.0.1:1?")
}

// --from neo4j sends a selection instead of entities: types, --priority as a minimum (only
// when given), --stale-after in days or weeks as a duration.
func TestPrepareFromNeo4jSendsASelection(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
		return &enrichv1.PrepareBatchResponse{Batch: &enrichv1.Batch{Id: "20260108-120000-1a2b3c", Source: "neo4j:Club stale-after=720h0m0s"}}, nil
	}
	b := setupPrepare(t, ok)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--addr", b.addr, "prepare", "--from", "neo4j", "--types", "Club,Person", "--priority", "high",
		"--stale-after", "30d", "--size", "90"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	require.Equal(t, "20260108-120000-1a2b3c\n", stdout.String())
	req := b.request()
	require.Empty(t, req.GetEntities())
	require.Equal(t, int32(90), req.GetSize())
	src := req.GetNeo4JSource()
	require.NotNil(t, src)
	require.Equal(t, []string{"Club", "Person"}, src.GetEntityTypes())
	require.Equal(t, enrichv1.Priority_PRIORITY_HIGH, src.GetMinPriority())
	require.Equal(t, 30*24*time.Hour, src.GetStaleAfter().AsDuration())

	b = setupPrepare(t, ok)
	code = Main([]string{"--addr", b.addr, "prepare", "--from", "neo4j", "--stale-after", "2w"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	src = b.request().GetNeo4JSource()
	require.Equal(t, enrichv1.Priority_PRIORITY_UNSPECIFIED, src.GetMinPriority(), "no --priority: every priority")
	require.Empty(t, src.GetEntityTypes(), "no --types: every type with a label")
	require.Equal(t, 14*24*time.Hour, src.GetStaleAfter().AsDuration())

	for _, args := range [][]string{
		{"prepare", "--from", "neo4j", "--stale-after", "30"},
		{"prepare", "--from", "neo4j", "--stale-after", "-1d"},
		{"prepare", "--from", "neo4j", "--stale-after", "d"},
		{"prepare", "--from", b.file, "--types", "Club"},
		{"prepare", "--from", b.file, "--stale-after", "30d"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, ExitUsage, Main(append([]string{"--addr", b.addr}, args...), &stdout, &stderr), "%v", args)
	}
}

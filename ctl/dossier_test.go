package ctl

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// dossierServer has three batches, newest first; only the middle one has a dossier of "club-1".
func dossierServer(t *testing.T) string {
	t.Helper()
	return startFakeServer(t, &fakeControlServer{
		ListBatchesFunc: func(context.Context, *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error) {
			return &enrichv1.ListBatchesResponse{Batches: []*enrichv1.Batch{{Id: "b3"}, {Id: "b2"}, {Id: "b1"}}}, nil
		},
		GetDossierFunc: func(_ context.Context, req *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error) {
			if req.GetEntityId() == "club-1" && (req.GetBatchId() == "b2" || req.GetBatchId() == "b1") {
				return &enrichv1.GetDossierResponse{DossierJson: []byte(`{"entity_id":"club-1","batch":"` + req.GetBatchId() + `"}`)}, nil
			}
			return nil, status.Error(codes.NotFound, "no dossier")
		},
	})
}

func TestDossierLatestAcrossBatches(t *testing.T) {
	t.Parallel()
	addr := dossierServer(t)

	var stdout, stderr bytes.Buffer
	code := Main([]string{"--addr", addr, "dossier", "club-1"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	require.Contains(t, stdout.String(), `"batch": "b2"`, "the newest batch holding a dossier wins")

	stdout.Reset()
	code = Main([]string{"--addr", addr, "dossier", "b1", "club-1"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	require.Contains(t, stdout.String(), `"batch": "b1"`, "an explicit batch is honoured")

	stdout.Reset()
	stderr.Reset()
	code = Main([]string{"--addr", addr, "dossier", "nobody"}, &stdout, &stderr)
	require.NotEqual(t, ExitOK, code)
	require.Contains(t, stderr.String(), `no dossier of entity "nobody"`)
}

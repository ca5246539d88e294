package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// fakeSource embeds the interface and answers the calls the tests need.
type fakeSource struct {
	Source
	dossier []byte
}

func (f *fakeSource) GetBatch(_ context.Context, req *enrichv1.GetBatchRequest) (*enrichv1.GetBatchResponse, error) {
	if req.GetBatchId() != "b1" {
		return nil, status.Errorf(codes.NotFound, "batch %q not found", req.GetBatchId())
	}
	return &enrichv1.GetBatchResponse{Batch: &enrichv1.Batch{Id: "b1", State: enrichv1.BatchState_BATCH_STATE_RUNNING,
		Instances: []*enrichv1.InstanceProgress{{InstanceType: "entities", Total: 3}}}}, nil
}

func (f *fakeSource) ListItems(_ context.Context, req *enrichv1.ListItemsRequest) (*enrichv1.ListItemsResponse, error) {
	if req.GetStates()[0] == enrichv1.ItemState_ITEM_STATE_FAILED {
		return &enrichv1.ListItemsResponse{Items: []*enrichv1.Item{{Entity: &enrichv1.Entity{Id: "x<script>", Name: "X"}, LastError: "exit status 2"}}}, nil
	}
	return &enrichv1.ListItemsResponse{}, nil
}

func (f *fakeSource) GetDossier(_ context.Context, req *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error) {
	if req.GetEntityId() != "club/1" {
		return nil, status.Error(codes.NotFound, "no dossier")
	}
	return &enrichv1.GetDossierResponse{DossierJson: f.dossier}, nil
}

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestDashboardServesPageAndAPI(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(&fakeSource{}))
	t.Cleanup(srv.Close)

	resp, body := get(t, srv, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<script src="/static/app.js">`)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'", "nothing loads from elsewhere")
	for _, asset := range []string{"/static/app.js", "/static/app.css"} {
		resp, _ := get(t, srv, asset)
		require.Equal(t, http.StatusOK, resp.StatusCode, asset)
	}

	resp, body = get(t, srv, "/api/batches/b1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var page struct {
		Batch    map[string]any   `json:"batch"`
		Failures []map[string]any `json:"failures"`
		Dossiers []map[string]any `json:"dossiers"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Equal(t, "BATCH_STATE_RUNNING", page.Batch["state"])
	require.Len(t, page.Failures, 1)
	require.Equal(t, "exit status 2", page.Failures[0]["lastError"])
	require.NotNil(t, page.Dossiers, "an empty list, not null")

	resp, body = get(t, srv, "/api/batches/nope")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, `batch "nope" not found`)
}

func TestDossierIsServedReadOnlyAsJSONOrText(t *testing.T) {
	t.Parallel()
	doc := `{"entity_id":"club/1","entity_type":"Club","name":"<b>Real</b> Club","summary":"s"}`
	srv := httptest.NewServer(Handler(&fakeSource{dossier: []byte(doc)}))
	t.Cleanup(srv.Close)

	resp, body := get(t, srv, "/dossier?batch=b1&entity=club%2F1&format=json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.JSONEq(t, doc, body)

	resp, body = get(t, srv, "/dossier?batch=b1&entity=club%2F1&format=md")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), "markdown is never served as HTML")
	require.Contains(t, body, "Real")

	resp, _ = get(t, srv, "/dossier?batch=b1&entity=club%2F1&format=html")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = get(t, srv, "/dossier?batch=b1&entity=other")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/dossier?batch=b1&entity=club%2F1", nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "the dashboard is read-only")
}

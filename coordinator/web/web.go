// Package web is the coordinator's read-only dashboard: a single page (embedded, no external
// assets, so it works offline) that polls a small JSON API built on the ControlService's read
// calls, plus read-only access to each dossier as JSON or Markdown.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sportsintel/enrich/coordinator/dossier"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

//go:embed assets
var assets embed.FS

// Source is what the dashboard reads: the ControlService's read-only calls. The coordinator's
// ControlService implementation satisfies it, so the dashboard shows exactly what enrichctl shows.
type Source interface {
	ListBatches(context.Context, *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error)
	GetBatch(context.Context, *enrichv1.GetBatchRequest) (*enrichv1.GetBatchResponse, error)
	ListItems(context.Context, *enrichv1.ListItemsRequest) (*enrichv1.ListItemsResponse, error)
	ListAgents(context.Context, *enrichv1.ListAgentsRequest) (*enrichv1.ListAgentsResponse, error)
	GetDossier(context.Context, *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error)
}

const (
	// batchesShown is how many batches the list shows, newest first.
	batchesShown = 100
	// itemsShown bounds the failures and dossier links of one batch page, so a page for a batch
	// of tens of thousands stays light; the report and enrichctl have the full lists.
	itemsShown = 1000
	// requestTimeout bounds one API call; the page polls again a second later anyway.
	requestTimeout = 10 * time.Second
)

// Zero values are sent so the page reads "failed": 0 rather than a missing key.
var jsonOpts = protojson.MarshalOptions{EmitUnpopulated: true}

// Handler serves the dashboard at / and its API under /api/.
func Handler(src Source) http.Handler {
	h := &handler{src: src}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("GET /api/batches", h.batches)
	mux.HandleFunc("GET /api/batches/{id}", h.batch)
	mux.HandleFunc("GET /api/agents", h.agents)
	mux.HandleFunc("GET /dossier", h.dossier)
	return secure(mux)
}

// secure adds headers that keep the page from loading anything but its own files.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

type handler struct{ src Source }

func (h *handler) batches(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	resp, err := h.src.ListBatches(ctx, &enrichv1.ListBatchesRequest{Limit: batchesShown})
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, resp)
}

func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	b, err := h.src.GetBatch(ctx, &enrichv1.GetBatchRequest{BatchId: id})
	if err != nil {
		writeError(w, err)
		return
	}
	failed, err := h.src.ListItems(ctx, &enrichv1.ListItemsRequest{BatchId: id, Limit: itemsShown,
		States: []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_FAILED}})
	if err != nil {
		writeError(w, err)
		return
	}
	done, err := h.src.ListItems(ctx, &enrichv1.ListItemsRequest{BatchId: id, Limit: itemsShown,
		States: []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_SUCCEEDED}})
	if err != nil {
		writeError(w, err)
		return
	}
	page := batchPage{
		Batch:     raw(b.GetBatch()),
		Failures:  rawItems(failed.GetItems()),
		Dossiers:  rawItems(done.GetItems()),
		Truncated: len(failed.GetItems()) >= itemsShown || len(done.GetItems()) >= itemsShown,
	}
	writeJSON(w, page)
}

func (h *handler) agents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	resp, err := h.src.ListAgents(ctx, &enrichv1.ListAgentsRequest{})
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, resp)
}

// dossier serves one entity's dossier: ?batch=B&entity=E&format=json|md. Query parameters, not
// path segments, because entity ids may contain slashes.
func (h *handler) dossier(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	q := r.URL.Query()
	resp, err := h.src.GetDossier(ctx, &enrichv1.GetDossierRequest{BatchId: q.Get("batch"), EntityId: q.Get("entity")})
	if err != nil {
		writeError(w, err)
		return
	}
	switch q.Get("format") {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp.GetDossierJson())
	case "md":
		md, err := dossier.Markdown(resp.GetDossierJson())
		if err != nil {
			http.Error(w, "render dossier: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// Served as text, never as HTML: a dossier holds text scraped from the web.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(md)
	default:
		http.Error(w, "format must be json or md", http.StatusBadRequest)
	}
}

// batchPage is one batch with the lists its page shows, each element in protojson form.
type batchPage struct {
	Batch     json.RawMessage   `json:"batch"`
	Failures  []json.RawMessage `json:"failures"`
	Dossiers  []json.RawMessage `json:"dossiers"`
	Truncated bool              `json:"truncated"`
}

func raw(m proto.Message) json.RawMessage {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		// Only a message with invalid UTF-8 fails, and the store never holds one.
		return json.RawMessage("null")
	}
	return b
}

func rawItems(items []*enrichv1.Item) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		out = append(out, raw(it))
	}
	return out
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// writeError maps a gRPC status to the HTTP status an operator's browser shows.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch status.Code(err) {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		code = http.StatusServiceUnavailable
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	} else if errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusServiceUnavailable
	}
	http.Error(w, msg, code)
}

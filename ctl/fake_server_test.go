package ctl

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// fakeControlServer stands in for the coordinator's ControlService behind a
// real loopback listener, so tests go through the CLI's real dial, flags
// and gRPC client. Only the RPCs a test sets a ...Func for answer; the rest
// are Unimplemented. The real coordinator is exercised by the end-to-end
// tests, which start the binaries.
type fakeControlServer struct {
	enrichv1.UnimplementedControlServiceServer

	PrepareBatchFunc func(context.Context, *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error)
	GetBatchFunc     func(context.Context, *enrichv1.GetBatchRequest) (*enrichv1.GetBatchResponse, error)
	ListBatchesFunc  func(context.Context, *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error)
	GetDossierFunc   func(context.Context, *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error)
}

func (f *fakeControlServer) PrepareBatch(ctx context.Context, req *enrichv1.PrepareBatchRequest) (*enrichv1.PrepareBatchResponse, error) {
	if f.PrepareBatchFunc == nil {
		return f.UnimplementedControlServiceServer.PrepareBatch(ctx, req)
	}
	return f.PrepareBatchFunc(ctx, req)
}

func (f *fakeControlServer) GetBatch(ctx context.Context, req *enrichv1.GetBatchRequest) (*enrichv1.GetBatchResponse, error) {
	if f.GetBatchFunc == nil {
		return f.UnimplementedControlServiceServer.GetBatch(ctx, req)
	}
	return f.GetBatchFunc(ctx, req)
}

func (f *fakeControlServer) ListBatches(ctx context.Context, req *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error) {
	if f.ListBatchesFunc == nil {
		return f.UnimplementedControlServiceServer.ListBatches(ctx, req)
	}
	return f.ListBatchesFunc(ctx, req)
}

func (f *fakeControlServer) GetDossier(ctx context.Context, req *enrichv1.GetDossierRequest) (*enrichv1.GetDossierResponse, error) {
	if f.GetDossierFunc == nil {
		return f.UnimplementedControlServiceServer.GetDossier(ctx, req)
	}
	return f.GetDossierFunc(ctx, req)
}

// startFakeServer serves fake on 127.0.0.1 until the test ends and returns its address.
func startFakeServer(t *testing.T, fake *fakeControlServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	enrichv1.RegisterControlServiceServer(srv, fake)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

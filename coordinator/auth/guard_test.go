package auth

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// A service the rule table has never heard of, served by a real server behind the guard.
var unlistedDesc = grpc.ServiceDesc{
	ServiceName: "test.v1.Unlisted",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Do", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.v1.Unlisted/Do"}, h)
	}}},
}

func TestUnlistedMethodIsDenied(t *testing.T) {
	t.Parallel()
	tok, err := LoadTokens(writeTokens(t, "admin ops "+Hash(adminSecret)+"\n"))
	require.NoError(t, err)
	for name, g := range map[string]*Guard{"auth on": NewGuard(tok), "auth off": NewGuard(nil)} {
		gs := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryInterceptor()))
		var impl any = struct{}{}
		gs.RegisterService(&unlistedDesc, impl)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adminSecret)
		err = conn.Invoke(ctx, "/test.v1.Unlisted/Do", &emptypb.Empty{}, &emptypb.Empty{})
		if g.Enabled() {
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%s: even an admin is denied a method without a rule: %v", name, err)
			require.ErrorContains(t, err, "has no access rule")
		} else {
			require.NoError(t, err, "%s: with authentication off everything is allowed", name)
		}
	}
}

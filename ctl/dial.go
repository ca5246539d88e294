package ctl

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// maxRecvMsgSize admits large answers (a batch's failed items with their
// stderr tails, big dossiers) beyond gRPC's 4 MiB default.
const maxRecvMsgSize = 16 << 20

// dial is the one place that connects to the coordinator, so TLS and auth
// can be added here alone.
func dial(cfg globalConfig) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(cfg.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

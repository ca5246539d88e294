package coordinator

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// limitsInterceptor applies the configured input limits (limits.* in enrich.yaml) to a
// prepared batch before the handler sees it, so a refused batch stores nothing. The
// handler's own checks remain the hard ceiling.
func (s *Server) limitsInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if p, ok := req.(*enrichv1.PrepareBatchRequest); ok {
			if err := s.checkPrepareLimits(p); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

func (s *Server) checkPrepareLimits(req *enrichv1.PrepareBatchRequest) error {
	l := s.cfg.Limits
	if n := len(req.GetEntities()); n > l.MaxEntitiesPerBatch {
		return status.Errorf(codes.InvalidArgument, "%d entities: more than limits.max_entities_per_batch (%d); split the file", n, l.MaxEntitiesPerBatch)
	}
	var bad problems
	for _, e := range req.GetEntities() {
		line := e.GetSourceLine()
		if n := len(e.GetAttributes()); n > l.MaxAttributes {
			bad.add(line, "%d attributes: more than limits.max_attributes (%d)", n, l.MaxAttributes)
		}
		for k, v := range e.GetAttributes() {
			if n := len(k) + len(v); n > l.MaxAttributeBytes {
				bad.add(line, "attribute %q is %d bytes: more than limits.max_attribute_bytes (%d)", keepHead(k, 64), n, l.MaxAttributeBytes)
			}
		}
	}
	return bad.err()
}

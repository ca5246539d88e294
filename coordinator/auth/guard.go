package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Guard runs every access check: one unary and one stream interceptor for gRPC, one
// middleware for HTTP. A Guard without tokens allows everything (authentication off).
type Guard struct {
	tokens *Tokens
}

// NewGuard returns a guard over tokens; nil tokens turns authentication off.
func NewGuard(tokens *Tokens) *Guard { return &Guard{tokens: tokens} }

// Enabled reports whether callers must present tokens.
func (g *Guard) Enabled() bool { return g != nil && g.tokens != nil }

type identityKey struct{}

// IdentityFrom returns the caller's identity, or nil when authentication is off or the
// method is public.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// WithIdentity returns ctx carrying id (for tests of handlers that read it).
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// authorize checks a call to fullMethod by the holder of secret (empty if none was sent).
func (g *Guard) authorize(fullMethod, secret string, hasSecret bool) (*Identity, error) {
	access, known := Methods[fullMethod]
	if !known {
		return nil, status.Errorf(codes.PermissionDenied, "%s has no access rule: denied", fullMethod)
	}
	if access.Public {
		return nil, nil
	}
	if !hasSecret {
		return nil, status.Error(codes.Unauthenticated, "missing token: send \"authorization: Bearer <token>\" (enrichctl --token-file, or ENRICH_TOKEN)")
	}
	id, ok := g.tokens.Lookup(secret)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown or revoked token")
	}
	if !access.Allows(id.Role) {
		return nil, status.Errorf(codes.PermissionDenied, "%s (role %s) may not call %s; it needs role %s",
			id.Name, id.Role, fullMethod, rolesText(access.Roles))
	}
	return id, nil
}

func rolesText(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// bearer extracts the token from gRPC metadata.
func bearer(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := cutScheme(v, "Bearer"); ok && tok != "" {
			return tok, true
		}
	}
	return "", false
}

func cutScheme(v, scheme string) (string, bool) {
	if len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) && v[len(scheme)] == ' ' {
		return strings.TrimSpace(v[len(scheme)+1:]), true
	}
	return "", false
}

// UnaryInterceptor checks every unary call.
func (g *Guard) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !g.Enabled() {
			return handler(ctx, req)
		}
		tok, ok := bearer(ctx)
		id, err := g.authorize(info.FullMethod, tok, ok)
		if err != nil {
			return nil, err
		}
		if id != nil {
			ctx = WithIdentity(ctx, id)
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks every stream when it opens.
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !g.Enabled() {
			return handler(srv, ss)
		}
		tok, ok := bearer(ss.Context())
		id, err := g.authorize(info.FullMethod, tok, ok)
		if err != nil {
			return err
		}
		if id != nil {
			ss = &identityStream{ServerStream: ss, ctx: WithIdentity(ss.Context(), id)}
		}
		return handler(srv, ss)
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// Realm is the Basic-auth realm a browser shows when it asks for the token.
const Realm = "enrich coordinator (any user name, token as password)"

// Middleware checks every HTTP request against RouteAccess. Browsers may send the token as
// the password of Basic authentication (the user name is ignored); scripts send Bearer.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		access := RouteAccess(r)
		if access.Public {
			next.ServeHTTP(w, r)
			return
		}
		secret, ok := httpSecret(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", Realm))
			http.Error(w, "missing token: send Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		id, found := g.tokens.Lookup(secret)
		if !found {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", Realm))
			http.Error(w, "unknown or revoked token", http.StatusUnauthorized)
			return
		}
		if !access.Allows(id.Role) {
			http.Error(w, fmt.Sprintf("%s (role %s) may not open %s; it needs role %s", id.Name, id.Role, r.URL.Path,
				rolesText(access.Roles)), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

func httpSecret(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if tok, ok := cutScheme(h, "Bearer"); ok && tok != "" {
		return tok, true
	}
	if _, pw, ok := r.BasicAuth(); ok && pw != "" {
		return pw, true
	}
	return "", false
}

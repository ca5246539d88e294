// Package auth decides who may call what on the coordinator.
//
// Callers present a bearer token (gRPC metadata "authorization: Bearer <token>", or HTTP
// Authorization with Bearer, or Basic with the token as the password so a browser can open the
// dashboard). The coordinator keeps only sha256 hashes of tokens, in a file of
// "role name sha256:hex" lines or YAML (tokens.go); each token has a name (the caller's
// identity) and one role:
//
//	agent   AgentService only; an agent's Hello.agent_id must be the token's name, or one of
//	        the token's agent_ids
//	viewer  read and watch RPCs, the dashboard and its JSON API, /metrics, reflection
//	admin   everything a viewer may, plus prepare, launch, cancel, retry, consolidate, drain,
//	        and the profiler
//
// One table (rules.go) maps every full gRPC method name and HTTP route to the roles allowed;
// a method missing from the table is denied, and a test walks every service the coordinator
// registers so a new RPC without a rule fails the build. Health checks, /healthz and /readyz
// are open so load balancers need no token.
//
// With no token file configured, authentication is off: every call is allowed, as on a
// developer's machine. The coordinator warns when that happens on a non-loopback address.
package auth

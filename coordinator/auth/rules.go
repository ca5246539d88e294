package auth

import (
	"net/http"
	"strings"
)

// Access is who may call a method or route.
type Access struct {
	// Public methods and routes need no token (health checks, probes).
	Public bool
	Roles  []Role
}

// Allows reports whether a caller with role may pass.
func (a Access) Allows(role Role) bool {
	if a.Public {
		return true
	}
	for _, r := range a.Roles {
		if r == role {
			return true
		}
	}
	return false
}

var (
	public     = Access{Public: true}
	agentOnly  = Access{Roles: []Role{RoleAgent}}
	readers    = Access{Roles: []Role{RoleViewer, RoleAdmin}}
	adminsOnly = Access{Roles: []Role{RoleAdmin}}
)

// Methods maps every full gRPC method name the coordinator serves to who may call it. A
// method absent from this table is denied to everyone (TestEveryMethodHasARule keeps it
// complete).
var Methods = map[string]Access{
	// Agents: one session stream. Operators' tokens cannot pose as agents.
	"/enrich.v1.AgentService/Connect": agentOnly,

	// Reading and watching.
	"/enrich.v1.ControlService/GetBatch":    readers,
	"/enrich.v1.ControlService/ListBatches": readers,
	"/enrich.v1.ControlService/WatchBatch":  readers,
	"/enrich.v1.ControlService/ListItems":   readers,
	"/enrich.v1.ControlService/ListAgents":  readers,
	"/enrich.v1.ControlService/GetDossier":  readers,

	// Everything that starts, stops or spends.
	"/enrich.v1.ControlService/PrepareBatch":     adminsOnly,
	"/enrich.v1.ControlService/LaunchBatch":      adminsOnly,
	"/enrich.v1.ControlService/CancelBatch":      adminsOnly,
	"/enrich.v1.ControlService/RetryBatch":       adminsOnly,
	"/enrich.v1.ControlService/ConsolidateBatch": adminsOnly,
	"/enrich.v1.ControlService/DrainAgent":       adminsOnly,
	"/enrich.v1.ControlService/PurgeEntity":      adminsOnly,

	// Schedules start paid work on their own: only admins change them.
	"/enrich.v1.ControlService/ListSchedules":  readers,
	"/enrich.v1.ControlService/CreateSchedule": adminsOnly,
	"/enrich.v1.ControlService/DeleteSchedule": adminsOnly,
	"/enrich.v1.ControlService/PauseSchedule":  adminsOnly,
	"/enrich.v1.ControlService/ResumeSchedule": adminsOnly,

	// Load balancers and orchestrators probe without credentials.
	"/grpc.health.v1.Health/Check": public,
	"/grpc.health.v1.Health/Watch": public,
	"/grpc.health.v1.Health/List":  public,

	// Reflection describes the API (grpcurl list); it is for people who may read.
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      readers,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": readers,
}

// MethodAccess returns the rule of a full method name; unknown methods get no role.
func MethodAccess(fullMethod string) Access {
	return Methods[fullMethod]
}

// RouteAccess returns the rule of an HTTP request to the coordinator's HTTP listener.
func RouteAccess(r *http.Request) Access {
	p := r.URL.Path
	switch {
	case p == "/healthz" || p == "/readyz":
		return public
	case p == "/metrics":
		// Metrics name agents, hosts and batch sizes: readers only.
		return readers
	case strings.HasPrefix(p, "/debug/"):
		// Profiles expose memory contents, which may hold dossiers and tokens in flight.
		return adminsOnly
	default:
		// The dashboard, its static files, its JSON API and dossiers.
		return readers
	}
}

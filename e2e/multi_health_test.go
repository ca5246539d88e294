package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// A coordinator whose PostgreSQL becomes unreachable (here: a partition that holds every packet
// between them) says so to load balancers: grpc.health.v1 reports NOT_SERVING for the server and
// its services and /readyz answers 503, so the balancer moves agents and enrichctl to a
// coordinator that can work. When the database is back, it serves again by itself.
func TestNotServingWhileDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.Schema(t))
	require.NoError(t, err)
	proxy := newPausableProxy(t, u.Host)
	t.Cleanup(proxy.resume) // release held connections whatever happens
	u.Host = proxy.addr()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	start(t, "enrich-coordinator", "--listen", addr, "--http", httpAddr, "--store", u.String(), "--dossiers", t.TempDir(),
		"--log-level", "debug")
	waitServing(t, addr)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	health := healthpb.NewHealthClient(conn)
	services := []string{"", enrichv1.AgentService_ServiceDesc.ServiceName, enrichv1.ControlService_ServiceDesc.ServiceName}
	status := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return res.GetStatus()
	}
	readyz := func() (int, string) {
		client := http.Client{Timeout: 5 * time.Second}
		res, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	allAre := func(want healthpb.HealthCheckResponse_ServingStatus) bool {
		for _, svc := range services {
			if status(svc) != want {
				return false
			}
		}
		return true
	}
	code, body := readyz()
	require.Equal(t, http.StatusOK, code, body)
	require.True(t, allAre(healthpb.HealthCheckResponse_SERVING))

	proxy.pause()
	cutAt := time.Now()
	// Checked every second with a 2 s timeout: a few seconds to notice.
	waitFor(t, 15*time.Second, "NOT_SERVING while the database is unreachable", func() bool {
		return allAre(healthpb.HealthCheckResponse_NOT_SERVING)
	})
	t.Logf("not serving %v after the partition", time.Since(cutAt).Round(time.Millisecond))
	code, body = readyz()
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "store unreachable")

	proxy.resume()
	backAt := time.Now()
	waitFor(t, 15*time.Second, "SERVING again once the database is back", func() bool {
		return allAre(healthpb.HealthCheckResponse_SERVING)
	})
	t.Logf("serving %v after the database came back", time.Since(backAt).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "/readyz 200 again", func() bool { code, _ := readyz(); return code == http.StatusOK })
	// And it works, not only says so: a control call that reads the store succeeds.
	_, err = enrichv1.NewControlServiceClient(conn).ListBatches(context.Background(), &enrichv1.ListBatchesRequest{})
	require.NoError(t, err)
}

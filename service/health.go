package service

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hiveqd/hiveqd/routing"
)

// QueryServiceName is the health-checked service name.
const QueryServiceName = "hiveq.v1.QueryService"

// HealthConfig configures a Health.
type HealthConfig struct {
	// Routes drives health: SERVING while DefaultConnector has a server.
	Routes           *routing.Table
	DefaultConnector string
	// Services are the names reported besides "" (the server as a whole),
	// e.g. QueryServiceName.
	Services []string
}

// Health is the gRPC health service of a process, driven by the routing
// table; the process registers it on each of its gRPC servers.
type Health struct {
	cfg    HealthConfig
	health *health.Server

	mu      sync.Mutex
	serving bool // the SetServing hook
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

// NewHealth returns a Health and starts its watcher; Close stops it.
func NewHealth(cfg HealthConfig) *Health {
	h := &Health{cfg: cfg, health: health.NewServer(), serving: true, stop: make(chan struct{})}
	h.update()
	h.wg.Add(1)
	go h.watch()
	return h
}

// Register registers the health service on gs.
func (h *Health) Register(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, h.health) }

// SetServing(false) makes health NOT_SERVING whatever the routes say (for
// shutdown: load balancers stop sending new calls); true undoes it.
func (h *Health) SetServing(on bool) {
	h.mu.Lock()
	h.serving = on
	h.mu.Unlock()
	h.update()
}

// Close stops the watcher and reports NOT_SERVING from then on.
func (h *Health) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	h.wg.Wait()
	h.health.Shutdown()
}

// watch follows the routing table.
func (h *Health) watch() {
	defer h.wg.Done()
	for {
		changed := h.cfg.Routes.Changed()
		h.update()
		select {
		case <-changed:
		case <-h.stop:
			return
		}
	}
}

func (h *Health) update() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if h.serving {
		if cur, err := h.cfg.Routes.Get(h.cfg.DefaultConnector); err == nil && cur.Endpoint != nil {
			st = healthpb.HealthCheckResponse_SERVING
		}
	}
	h.health.SetServingStatus("", st)
	for _, name := range h.cfg.Services {
		h.health.SetServingStatus(name, st)
	}
}

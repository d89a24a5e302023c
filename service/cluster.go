package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hiveqd/hiveqd/cluster"
	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/routing"
)

// forwardedKey marks a Failover a follower forwarded, so that a leader that
// lost its leadership meanwhile answers UNAVAILABLE instead of bouncing it.
const forwardedKey = "x-hiveqd-forwarded-from"

// ClusterConfig configures the ClusterService handler.
type ClusterConfig struct {
	Coordinator cluster.Coordinator
	// ReplicaID marks forwarded calls.
	ReplicaID string
	// DialLeader opens a client to the leader's address for forwarded
	// Failover calls (it must carry this deployment's TLS settings).
	DialLeader func(ctx context.Context, addr string) (*grpc.ClientConn, error)
	// Stopping, once closed, ends WatchTopology streams with UNAVAILABLE,
	// so that a graceful stop need not wait for watchers.
	Stopping <-chan struct{}
}

// ClusterService implements hiveq.v1.ClusterService.
type ClusterService struct {
	hiveqv1.UnimplementedClusterServiceServer
	cfg ClusterConfig
}

// NewCluster returns the handler.
func NewCluster(cfg ClusterConfig) *ClusterService { return &ClusterService{cfg: cfg} }

// Register adds the service to gs.
func (c *ClusterService) Register(gs *grpc.Server) { hiveqv1.RegisterClusterServiceServer(gs, c) }

// GetTopology returns this replica's view.
func (c *ClusterService) GetTopology(ctx context.Context, _ *hiveqv1.GetTopologyRequest) (*hiveqv1.GetTopologyResponse, error) {
	return &hiveqv1.GetTopologyResponse{Topology: TopologyProto(c.cfg.Coordinator.Topology())}, nil
}

// WatchTopology streams the topology now and after every change.
func (c *ClusterService) WatchTopology(_ *hiveqv1.WatchTopologyRequest, stream grpc.ServerStreamingServer[hiveqv1.WatchTopologyResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	updates := c.cfg.Coordinator.WatchTopology(ctx)
	for {
		select {
		case <-c.cfg.Stopping:
			return status.Error(codes.Unavailable, "replica shutting down: watch another replica")
		case t, ok := <-updates:
			if !ok {
				if err := stream.Context().Err(); err != nil {
					return status.FromContextError(err).Err()
				}
				return status.Error(codes.Unavailable, "topology watch ended")
			}
			if err := stream.Send(&hiveqv1.WatchTopologyResponse{Topology: TopologyProto(t)}); err != nil {
				return err
			}
		}
	}
}

// Failover moves a connector off its server, on the leader.
func (c *ClusterService) Failover(ctx context.Context, req *hiveqv1.FailoverRequest) (*hiveqv1.FailoverResponse, error) {
	if req.GetConnector() == "" {
		return nil, status.Error(codes.InvalidArgument, "failover: connector is required")
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "manual failover"
	}
	route, err := c.cfg.Coordinator.Failover(ctx, cluster.FailoverRequest{
		Connector: req.GetConnector(), ExpectedEpoch: req.GetExpectedEpoch(), Reason: reason, AbortRunning: req.GetAbortRunning(),
	})
	var nl *cluster.NotLeaderError
	if errors.As(err, &nl) {
		return c.forward(ctx, req, nl)
	}
	if err != nil {
		return nil, clusterStatus(err)
	}
	return &hiveqv1.FailoverResponse{Connector: c.connectorState(route)}, nil
}

func (c *ClusterService) forward(ctx context.Context, req *hiveqv1.FailoverRequest, nl *cluster.NotLeaderError) (*hiveqv1.FailoverResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(forwardedKey)) > 0 || nl.LeaderAddr == "" || c.cfg.DialLeader == nil {
		return nil, status.Errorf(codes.Unavailable, "failover: no leader can take it now (%v); retry", nl)
	}
	conn, err := c.cfg.DialLeader(ctx, nl.LeaderAddr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "failover: dial leader %s at %s: %v", nl.LeaderID, nl.LeaderAddr, err)
	}
	defer conn.Close()
	// Keep the caller's credentials: the leader authorises the call again.
	out := metadata.Pairs(forwardedKey, c.cfg.ReplicaID)
	if auth := md.Get("authorization"); len(auth) > 0 {
		out.Set("authorization", auth...)
	}
	return hiveqv1.NewClusterServiceClient(conn).Failover(metadata.NewOutgoingContext(ctx, out), req)
}

func (c *ClusterService) connectorState(r routing.Route) *hiveqv1.ConnectorState {
	for _, cs := range c.cfg.Coordinator.Topology().Connectors {
		if cs.Connector == r.Connector && cs.Epoch == r.Epoch {
			return connectorStateProto(cs)
		}
	}
	return connectorStateProto(cluster.ConnectorState{Route: r})
}

func clusterStatus(err error) error {
	var em *cluster.EpochMismatchError
	switch {
	case errors.As(err, &em):
		st := status.New(codes.FailedPrecondition, err.Error())
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: "EPOCH_MISMATCH", Domain: ErrorDomain, Metadata: map[string]string{
			"connector": em.Connector, "expected_epoch": fmt.Sprint(em.Expected), "epoch": fmt.Sprint(em.Current),
		}}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, routing.ErrUnknownConnector):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// TopologyProto converts a cluster.Topology.
func TopologyProto(t cluster.Topology) *hiveqv1.Topology {
	out := &hiveqv1.Topology{
		Cluster:         t.Cluster,
		Coordination:    t.Coordination,
		Self:            replicaProto(t.Self),
		Degraded:        t.Degraded,
		DegradedReason:  t.DegradedReason,
		ViewStale:       t.ViewStale,
		ViewConfirmedAt: ts(t.ViewConfirmedAt),
	}
	if t.Leader != nil {
		out.Leader = replicaProto(*t.Leader)
	}
	for _, r := range t.Replicas {
		out.Replicas = append(out.Replicas, replicaProto(r))
	}
	for _, cs := range t.Connectors {
		out.Connectors = append(out.Connectors, connectorStateProto(cs))
	}
	return out
}

func replicaProto(r cluster.Replica) *hiveqv1.Replica {
	return &hiveqv1.Replica{Id: r.ID, Address: r.Address, Started: ts(r.Started), Leader: r.Leader}
}

func connectorStateProto(cs cluster.ConnectorState) *hiveqv1.ConnectorState {
	out := &hiveqv1.ConnectorState{
		Name:     cs.Connector,
		Server:   serverProto(cs.Endpoint),
		Epoch:    cs.Epoch,
		ChosenBy: cs.ChosenBy,
		ChosenAt: ts(cs.ChosenAt),
		Reason:   cs.Reason,
		Drain:    cs.Drain,
		PrevDead: cs.PrevDead,
	}
	cands := append(cs.Candidates[:0:0], cs.Candidates...)
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Seq < cands[j].Seq })
	for _, ch := range cands {
		ep := ch.Endpoint
		out.Candidates = append(out.Candidates, &hiveqv1.Candidate{
			Server:    serverProto(&ep),
			Node:      ch.Node,
			Sequence:  ch.Seq,
			Version:   ch.Version,
			Healthy:   ch.Healthy,
			LastError: ch.LastError,
			LastProbe: ts(ch.LastProbe),
			DownUntil: ts(ch.DownUntil),
			Active:    ch.Active,
		})
	}
	return out
}

func serverProto(ep *hs2.Endpoint) *hiveqv1.Server {
	if ep == nil {
		return nil
	}
	return &hiveqv1.Server{Host: ep.Host, Port: int32(ep.Port), Transport: string(ep.Transport), Auth: string(ep.Auth), Tls: ep.TLS, HttpPath: ep.HTTPPath}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

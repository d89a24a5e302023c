package hs2

import (
	"context"
	"net"
	"time"
)

// Dead-peer detection on HS2 connections. A query's status long poll or
// fetch waits on a connection where nothing may move for seconds; if the
// server's host vanishes (a blackhole: packets dropped, no reset), only TCP
// can tell. Keepalive probes an idle connection; TCP_USER_TIMEOUT (Linux)
// bounds how long sent data, keepalive probes included, may stay
// unacknowledged before the kernel fails the connection, so a call on it
// returns an error instead of waiting for its own deadline. A JVM that is
// only paused (GC) keeps its kernel acknowledging, so this never fires on a
// live server.
const (
	// KeepAliveIdle is the idle time before the first keepalive probe.
	KeepAliveIdle = 5 * time.Second
	// KeepAliveInterval spaces the probes.
	KeepAliveInterval = 3 * time.Second
	// KeepAliveCount probes go unanswered before the connection fails.
	KeepAliveCount = 3
	// TCPUserTimeout bounds unacknowledged data on the connection.
	TCPUserTimeout = 15 * time.Second
)

// Dialer returns the net.Dialer hiveqd uses for HS2 by default: TCP
// keepalive as above and, on Linux, TCP_USER_TIMEOUT set on the socket
// before it connects.
func Dialer() *net.Dialer {
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     KeepAliveIdle,
			Interval: KeepAliveInterval,
			Count:    KeepAliveCount,
		},
		Control: setUserTimeout(TCPUserTimeout),
	}
}

// defaultDial is Options.DialContext's default.
func defaultDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return Dialer().DialContext(ctx, network, addr)
}

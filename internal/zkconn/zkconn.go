// Package zkconn bounds the I/O deadlines go-zookeeper sets on its
// connections. go-zookeeper waits ten receive timeouts (6.7 session
// timeouts) for the answer to its connect request, so a server that
// accepted the connection but never answers it (ZooKeeper starting up
// under load) holds a client off ZooKeeper for that long and expires its
// session. ZooKeeper's Java client gives up on a silent server after the
// session timeout and connects again; a Capped connection does the same.
package zkconn

import (
	"net"
	"time"
)

// Capped is a connection whose deadlines are at most Limit from when they
// are set (no cap when Limit is 0).
type Capped struct {
	net.Conn
	Limit time.Duration
}

func (c *Capped) capped(t time.Time) time.Time {
	if !t.IsZero() && c.Limit > 0 {
		if lim := time.Now().Add(c.Limit); t.After(lim) {
			return lim
		}
	}
	return t
}

func (c *Capped) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.capped(t)) }
func (c *Capped) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.capped(t)) }
func (c *Capped) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.capped(t)) }

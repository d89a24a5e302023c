// Package registry discovers the HiveServer2 instances of one connector and
// chooses the one it routes to.
//
// Discovery has three modes. NewZooKeeper watches the children of
// /<namespace> that HS2 registers with hive.server2.support.dynamic.service.discovery
// (znode names serverUri=host:port;version=v;sequence=n, data k=v;... or a bare
// host:port). NewZooKeeperHA watches the active/passive registry of HS2
// Interactive (/<namespace>-unsecure or -sasl, JSON service records under
// instances/, leader latch under _LEADER). NewStatic serves a fixed list.
// ZooKeeper discovery uses watches, never timers: every child and data watch is
// re-armed when it fires, and everything is re-read and re-armed whenever a
// session is (re-)established, so no change is lost across a reconnect or a
// session expiry.
//
// A Selector turns the discovered candidates into a Choice: it keeps the
// current server while it is registered and healthy (sticky), probes it every
// ProbeInterval, fails over after FailThreshold consecutive failed probes,
// verifies the next server before switching to it, and holds failed servers
// down for a Cooldown. A deregistered server is drained (Choice.Drain): its
// running queries may finish.
package registry

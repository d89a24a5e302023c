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
// down for a Cooldown.
//
// A Choice also says what the switch means for the queries running on the
// old server. Only a server that refused every failed probe (its port is
// closed: the process is gone) is declared dead (Choice.PrevDead), and only
// then do its running queries end. Every other switch is a drain
// (Choice.Drain): a deregistered server (HS2's graceful stop, the last one
// too: "none" is published as a drain), a manual Failover (unless it asks to
// abort), and probes that only timed out. Running queries there may finish.
//
// Probes that time out do not tell a hung server from a saturated one; real
// traffic does (SelectorConfig.Traffic, see package traffic). A lone server
// whose probes time out stays while calls to it still get answers; once none
// has for AnswerWindow, "none" is published, and it is probed every interval
// so that its first answer brings it back.
package registry

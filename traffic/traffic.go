// Package traffic is the passive half of HiveServer2 health: evidence from
// real query traffic that a server still answers.
//
// An Observer is handed to the query engine (query.Config.Traffic), which
// calls CallStarted before every HS2 call and the returned func when the
// call returns. Per connector and server it keeps when a call last got an
// answer (success, or an error the server itself returned) and the oldest
// call still waiting. The selector (registry) reads it when its probes
// time out: calls still completing mean the server is saturated, not hung,
// so nothing is taken out of service on its account; no call completing
// means it is unresponsive.
//
// In etcd mode only the leader probes, but queries run on every replica.
// Each replica therefore publishes a small summary of its own evidence
// (Observer.Local) under a key bound to its lease, traffic/<replica-id>;
// the leader merges what it reads (Observer.SetRemote). The summary carries
// ages, not timestamps, so clock skew between replicas does not matter. It
// is written at most every publish interval (500 ms) and only when a call
// completed or started since the last write, so an idle replica writes
// nothing and a busy one writes two small keys a second: evidence reaches
// the leader within about half a second plus one etcd round trip, well
// inside the window (2 s) over which the selector asks for a completion.
//
// Counting and map updates under one mutex cost well under a microsecond
// per call, next to an HS2 round trip of a millisecond or more.
package traffic

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

// Activity is what is known about calls to one server.
type Activity struct {
	// LastAnswer is when a call last returned an answer from the server
	// (zero: never seen).
	LastAnswer time.Time
	// OldestPending is when the oldest call still waiting started (zero:
	// none is waiting).
	OldestPending time.Time
	Pending       int
}

type key struct{ connector, server string }

type stats struct {
	lastAnswer time.Time
	pending    map[uint64]time.Time
	// changed since the last Local summary
	dirty bool
}

// Observer records HS2 call outcomes; safe for concurrent use. The zero
// value is not usable: call New.
type Observer struct {
	now func() time.Time

	mu     sync.Mutex
	nextID uint64
	local  map[key]*stats
	remote map[string]map[key]Activity // by replica id
}

// New returns an Observer; now is its clock (time.Now when nil).
func New(now func() time.Time) *Observer {
	if now == nil {
		now = time.Now
	}
	return &Observer{now: now, local: map[key]*stats{}, remote: map[string]map[key]Activity{}}
}

// CallStarted implements query.TrafficObserver: it is called before an HS2
// call to server (host:port) and the returned func once, with the call's
// error, when it returns. A nil error or an *hs2.ServerError means the
// server answered.
func (o *Observer) CallStarted(connector, server string) (done func(err error)) {
	k := key{connector, server}
	o.mu.Lock()
	st := o.local[k]
	if st == nil {
		st = &stats{pending: map[uint64]time.Time{}}
		o.local[k] = st
	}
	o.nextID++
	id := o.nextID
	st.pending[id] = o.now()
	st.dirty = true
	o.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			var se *hs2.ServerError
			answered := err == nil || errors.As(err, &se)
			o.mu.Lock()
			delete(st.pending, id)
			if answered {
				st.lastAnswer = o.now()
			}
			st.dirty = true
			o.mu.Unlock()
		})
	}
}

// Activity merges this process's evidence about server with what other
// replicas published.
func (o *Observer) Activity(connector, server string) Activity {
	k := key{connector, server}
	o.mu.Lock()
	defer o.mu.Unlock()
	var a Activity
	if st := o.local[k]; st != nil {
		a = st.activity()
	}
	for _, m := range o.remote {
		a = merge(a, m[k])
	}
	return a
}

// LastAnswer is when any replica last saw server answer a call (zero if
// never); it implements registry.TrafficEvidence.
func (o *Observer) LastAnswer(connector, server string) time.Time {
	return o.Activity(connector, server).LastAnswer
}

func (st *stats) activity() Activity {
	a := Activity{LastAnswer: st.lastAnswer, Pending: len(st.pending)}
	for _, t := range st.pending {
		if a.OldestPending.IsZero() || t.Before(a.OldestPending) {
			a.OldestPending = t
		}
	}
	return a
}

func merge(a, b Activity) Activity {
	if b.LastAnswer.After(a.LastAnswer) {
		a.LastAnswer = b.LastAnswer
	}
	if !b.OldestPending.IsZero() && (a.OldestPending.IsZero() || b.OldestPending.Before(a.OldestPending)) {
		a.OldestPending = b.OldestPending
	}
	a.Pending += b.Pending
	return a
}

// Summary is one replica's evidence as published to the others: ages in
// milliseconds at the time it was made, per connector and server.
type Summary struct {
	Servers []ServerSummary `json:"servers"`
}

// ServerSummary is one server's line in a Summary.
type ServerSummary struct {
	Connector string `json:"connector"`
	Server    string `json:"server"`
	// AnswerAgeMS is how long ago a call last got an answer; -1: never.
	AnswerAgeMS int64 `json:"answer_age_ms"`
	// OldestPendingMS is how long the oldest waiting call has waited; -1: none.
	OldestPendingMS int64 `json:"oldest_pending_ms"`
	Pending         int   `json:"pending"`
}

// Local summarises this process's evidence for publication. changed is
// false when no call started or ended since the previous Local call, so
// the caller may skip the write.
func (o *Observer) Local() (s Summary, changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for k, st := range o.local {
		if st.dirty {
			changed = true
			st.dirty = false
		}
		a := st.activity()
		line := ServerSummary{Connector: k.connector, Server: k.server, AnswerAgeMS: -1, OldestPendingMS: -1, Pending: a.Pending}
		if !a.LastAnswer.IsZero() {
			line.AnswerAgeMS = now.Sub(a.LastAnswer).Milliseconds()
		}
		if !a.OldestPending.IsZero() {
			line.OldestPendingMS = now.Sub(a.OldestPending).Milliseconds()
		}
		s.Servers = append(s.Servers, line)
	}
	sort.Slice(s.Servers, func(i, j int) bool {
		if s.Servers[i].Connector != s.Servers[j].Connector {
			return s.Servers[i].Connector < s.Servers[j].Connector
		}
		return s.Servers[i].Server < s.Servers[j].Server
	})
	return s, changed
}

// SetRemote installs replica's published summary, received now (this
// process's clock); a nil summary forgets the replica (its key vanished).
func (o *Observer) SetRemote(replica string, s *Summary) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s == nil {
		delete(o.remote, replica)
		return
	}
	now := o.now()
	m := make(map[key]Activity, len(s.Servers))
	for _, l := range s.Servers {
		var a Activity
		if l.AnswerAgeMS >= 0 {
			a.LastAnswer = now.Add(-time.Duration(l.AnswerAgeMS) * time.Millisecond)
		}
		if l.OldestPendingMS >= 0 {
			a.OldestPending = now.Add(-time.Duration(l.OldestPendingMS) * time.Millisecond)
		}
		a.Pending = l.Pending
		m[key{l.Connector, l.Server}] = a
	}
	o.remote[replica] = m
}

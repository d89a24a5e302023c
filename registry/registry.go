package registry

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/hiveqd/hiveqd/hs2"
)

// Candidate is one registered HiveServer2.
type Candidate struct {
	Endpoint hs2.Endpoint
	// Node is the registration: the znode path (below the chroot) or
	// "static:<index>".
	Node string
	// Seq is the registration's sequence number: lower registered earlier.
	Seq     int64
	Version string // HS2 version from the znode name, when published
	// Active says the instance may serve clients. It is always true in the
	// zookeeper and static modes; in zookeeper-ha only the leader is active,
	// and passive instances are never chosen.
	Active    bool
	Principal string            // hive.server2.authentication.kerberos.principal
	Data      map[string]string // everything the server published
}

// Discovery produces the registered candidates of one connector.
type Discovery interface {
	// Run calls update with the full list on every change and after every
	// resync, from one goroutine; it returns when ctx ends (nil), or early
	// with an error only for an unusable configuration. While the source is
	// unreachable it keeps quiet: the last list stays valid.
	Run(ctx context.Context, update func([]Candidate)) error
}

// Status explains a Discovery's latest list; the Selector uses it to say why
// no server is available.
type Status struct {
	// Source names where servers register, e.g. "/hiveserver2" or "static list".
	Source string
	// Skipped counts registrations that could not be used, with a reason for
	// each (malformed name or data, unreadable znode).
	Skipped  int
	Problems []string
	// Err is the current failure to read the source, if any.
	Err string
}

// StatusReporter is implemented by Discoveries that can explain their list.
type StatusReporter interface{ Status() Status }

// statusBox is a Status shared between a discovery's goroutine and readers.
type statusBox struct {
	mu sync.Mutex
	st Status
}

func (b *statusBox) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.Problems = append([]string(nil), st.Problems...)
	return st
}

func (b *statusBox) set(f func(*Status)) {
	b.mu.Lock()
	f(&b.st)
	b.mu.Unlock()
}

type static struct {
	cands []Candidate
}

// NewStatic serves a fixed list; its order is the "oldest" policy's order.
func NewStatic(eps []hs2.Endpoint) Discovery {
	s := &static{}
	for i, ep := range eps {
		s.cands = append(s.cands, Candidate{Endpoint: ep, Node: fmt.Sprintf("static:%d", i), Seq: int64(i), Active: true})
	}
	return s
}

func (s *static) Run(ctx context.Context, update func([]Candidate)) error {
	update(cloneCandidates(s.cands))
	<-ctx.Done()
	return nil
}

func (s *static) Status() Status { return Status{Source: "static list"} }

func cloneCandidates(cs []Candidate) []Candidate {
	out := make([]Candidate, len(cs))
	for i, c := range cs {
		c.Data = maps.Clone(c.Data)
		out[i] = c
	}
	return out
}

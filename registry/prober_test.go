package registry

import (
	"context"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
)

func probeOnce(p Prober, ep hs2.Endpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultProbeTimeout)
	defer cancel()
	return p.Probe(ctx, ep)
}

func TestHS2Prober(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	ep := endpointOfSim(t, s)
	p := &HS2Prober{}
	defer p.CloseIdle()
	for range 5 {
		if err := probeOnce(p, ep); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.SessionsOpened != 1 || st.OpenSessions != 1 {
		t.Fatalf("one reused session expected: %+v", st)
	}

	s.Crash()
	if err := probeOnce(p, ep); err == nil {
		t.Fatal("crashed server passed")
	}
	s.Heal()
	if err := probeOnce(p, ep); err != nil {
		t.Fatalf("healed server: %v", err)
	}
	p.CloseIdle()

	// Fresh mode: open, ping, close every time.
	fresh := &HS2Prober{SessionMaxAge: -1}
	before := s.Stats().SessionsOpened
	for range 3 {
		if err := probeOnce(fresh, ep); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.SessionsOpened != before+3 || st.OpenSessions != 0 {
		t.Fatalf("fresh sessions expected: %+v", st)
	}

	// A hung server is cut off by the probe's deadline.
	s.Hang()
	start := time.Now()
	if err := probeOnce(p, ep); err == nil {
		t.Fatal("hung server passed")
	}
	if d := time.Since(start); d > 2*DefaultProbeTimeout {
		t.Fatalf("hung probe took %v", d)
	}
	s.Heal()

	// A Kerberos endpoint cannot be probed without a Kerberos identity.
	k := ep
	k.Auth = hs2.AuthKerberos
	if err := probeOnce(p, k); err == nil {
		t.Fatal("kerberos endpoint passed")
	}
}

func endpointOfSim(t *testing.T, s *hs2sim.Server) hs2.Endpoint {
	t.Helper()
	host, port, err := splitHostPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return hs2.Endpoint{Host: host, Port: port}
}

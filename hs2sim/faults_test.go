package hs2sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

func TestCrashAndHeal(t *testing.T) {
	for _, transport := range []string{"binary", "http"} {
		t.Run(transport, func(t *testing.T) {
			s := startServer(t, Config{Transport: transport})
			mode := "sasl"
			if transport == "http" {
				mode = "http"
			}
			c := dialRaw(t, s, dialOpts{mode: mode})
			h := c.open(nil)
			port := s.Port()

			s.Crash()
			if st := s.Stats(); st.OpenSessions != 0 || st.OpenConnections != 0 {
				t.Errorf("after crash: %+v", st)
			}
			if _, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: h, InfoType: hiveserver.TGetInfoType_CLI_DBMS_VER}); err == nil {
				t.Error("a call on a crashed server succeeded")
			}
			if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial a crashed server: %v, want connection refused", err)
			}
			s.Crash() // idempotent

			s.Heal()
			if s.Port() != port {
				t.Errorf("port %d after heal, was %d", s.Port(), port)
			}
			c2 := dialRaw(t, s, dialOpts{mode: mode})
			h2 := c2.open(nil)
			// The old session died with the crash.
			r := c2.exec(h, "SELECT 1", true)
			if r.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || !strings.HasPrefix(r.Status.GetErrorMessage(), "Invalid SessionHandle") {
				t.Errorf("old session: %v", r.Status)
			}
			if got := c2.query(h2, "SELECT 1"); got[0][0] != "1" {
				t.Errorf("after heal: %v", got)
			}
			c2.closeSession(h2)
		})
	}
}

func TestHang(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	s.Hang()
	// A new connection is accepted, but its SASL negotiation never
	// completes.
	conf := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 300 * time.Millisecond}
	sock := thrift.NewTSocketConf(s.Addr(), conf)
	if err := sock.Open(); err != nil {
		t.Fatalf("a hung server still accepts: %v", err)
	}
	_ = writeSASL(sock.Conn(), saslStart, "PLAIN")
	_ = writeSASL(sock.Conn(), saslOK, "\x00u\x00p")
	_ = sock.Conn().SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	if _, err := sock.Conn().Read(b[:]); err == nil || !isTimeout(err) {
		t.Errorf("handshake on a hung server: %v, want a timeout", err)
	}
	sock.Close()

	// A call on an established connection gets no answer until Heal.
	done := make(chan error, 1)
	go func() {
		_, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: h, InfoType: hiveserver.TGetInfoType_CLI_DBMS_VER})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("hung server answered: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	s.Heal()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after heal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after heal")
	}
	c.closeSession(h)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSlow(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	s.SetSlow(200 * time.Millisecond)
	start := time.Now()
	c.query(h, "SELECT 1") // execute, status, fetch, fetch, close: 5 calls
	if el := time.Since(start); el < time.Second {
		t.Errorf("5 slow calls took %v", el)
	}
	s.Heal()
	c.closeSession(h)
}

func TestDropAfterRows(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	op, _ := c.run(h, "SELECT * FROM synth.rows_10000")
	s.DropAfterRows(2500)
	var got []int
	for i := 0; i < 3; i++ {
		f := c.fetch(op, 1000, hiveserver.TFetchOrientation_FETCH_NEXT)
		ok(t, f.Status)
		got = append(got, len(f.Results.Columns[0].I64Val.Values))
	}
	if got[0] != 1000 || got[1] != 1000 || got[2] != 500 {
		t.Errorf("fetched %v, want 1000 1000 500", got)
	}
	if _, err := c.FetchResults(ctxT(t), &hiveserver.TFetchResultsReq{OperationHandle: op, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: 1000}); err == nil {
		t.Error("the fetch past the limit succeeded")
	}
	waitFor(t, 5*time.Second, func() error {
		if st := s.Stats(); st.OpenSessions != 0 || st.OpenConnections != 0 {
			return errorf("stats %+v", st)
		}
		return nil
	})
	s.Heal()
	c2 := dialRaw(t, s, dialOpts{})
	h2 := c2.open(nil)
	if rows := c2.query(h2, "SELECT * FROM synth.rows_3000"); len(rows) != 3000 {
		t.Errorf("after heal: %d rows", len(rows))
	}
	c2.closeSession(h2)
}

func TestControlEndpoint(t *testing.T) {
	s := startServer(t, Config{})
	ctl := httptest.NewServer(s.ControlHandler())
	defer ctl.Close()
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Post(ctl.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/fault/slow?delay=1ms", "/fault/fail?on=true", "/fault/drop?rows=10", "/pace?rows_per_second=100&fetch_delay=1ms", "/fault/hang", "/fault/heal", "/fault/crash", "/fault/heal"} {
		if code, body := post(p); code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	f := &s.faults
	f.mu.Lock()
	if f.slow != 0 || f.fail || f.dropAfter != 0 || f.hang != nil || f.rate != 100 || f.fetchDelay != time.Millisecond {
		t.Errorf("faults after heal: slow %v fail %v drop %d rate %d delay %v", f.slow, f.fail, f.dropAfter, f.rate, f.fetchDelay)
	}
	f.mu.Unlock()
	for _, p := range []string{"/fault/slow?delay=soon", "/fault/drop?rows=x", "/fault/deregister", "/active?on=true"} {
		if code, _ := post(p); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", p, code)
		}
	}
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	resp, err := http.Get(ctl.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.OpenSessions != 1 || st.SessionsOpened != 1 || st.OpenConnections != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
	resp.Body.Close()
	if resp, err := http.Get(ctl.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("healthz %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(ctl.URL + "/fault/crash"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET crash: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	c.closeSession(h)
	http.DefaultClient.CloseIdleConnections()
}

// TestPause: a GC pause stalls every call, then answers them all; the
// connection and session survive it.
func TestPause(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	start := time.Now()
	s.Pause(700 * time.Millisecond)
	if _, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: h, InfoType: hiveserver.TGetInfoType_CLI_DBMS_VER}); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Fatalf("answered after %v, during the pause", d)
	}
	// Over: calls are answered at once again.
	start = time.Now()
	if got := c.query(h, "SELECT 1"); got[0][0] != "1" || time.Since(start) > 5*time.Second {
		t.Fatalf("after the pause: %v in %v", got, time.Since(start))
	}
}

// TestHoldOpenSessions: OpenSession waits, counted in Stats, while calls
// on an open session go on; Heal answers the held one.
func TestHoldOpenSessions(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	s.HoldOpenSessions()
	c2 := dialRaw(t, s, dialOpts{})
	opened := make(chan error, 1)
	go func() {
		resp, err := c2.OpenSession(ctxT(t), &hiveserver.TOpenSessionReq{ClientProtocol: hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10})
		if err == nil && resp.GetStatus().GetStatusCode() != hiveserver.TStatusCode_SUCCESS_STATUS {
			err = fmt.Errorf("status %v", resp.GetStatus())
		}
		opened <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().HeldOpens != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("OpenSession not held: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.query(h, "SELECT 1"); got[0][0] != "1" {
		t.Fatalf("a call on an open session while opens are held: %v", got)
	}
	select {
	case err := <-opened:
		t.Fatalf("OpenSession answered while held: %v", err)
	default:
	}
	s.Heal()
	if err := <-opened; err != nil {
		t.Fatalf("held OpenSession after Heal: %v", err)
	}
	if n := s.Stats().HeldOpens; n != 0 {
		t.Fatalf("%d opens still held", n)
	}
}

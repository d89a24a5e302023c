package registry

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/tlsutil"
)

// testTLS makes a certificate for 127.0.0.1 and the configs that serve
// and trust it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	server, client, err := tlsutil.TestConfigs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// tlsFront terminates TLS and forwards to a plain target, as ZooKeeper's
// secureClientPort does in front of the same server.
type tlsFront struct {
	l        net.Listener
	target   string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	ok, fail atomic.Int64
}

func startTLSFront(t *testing.T, conf *tls.Config, target string) *tlsFront {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{l: l, target: target, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *tlsFront) Addr() string      { return f.l.Addr().String() }
func (f *tlsFront) handshakes() int64 { return f.ok.Load() }
func (f *tlsFront) failures() int64   { return f.fail.Load() }

func (f *tlsFront) track(c net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
}

func (f *tlsFront) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.track(c, true)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.track(c, false)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.(*tls.Conn).Handshake(); err != nil {
				f.fail.Add(1)
				return
			}
			_ = c.SetDeadline(time.Time{})
			f.ok.Add(1)
			up, err := net.Dial("tcp", f.target)
			if err != nil {
				return
			}
			f.track(up, true)
			defer f.track(up, false)
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); up.Close(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func (f *tlsFront) close() {
	f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

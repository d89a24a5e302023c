// Package testenv starts real ZooKeeper and etcd servers and an MIT Kerberos
// KDC on free loopback ports, and a fault-injecting TCP proxy, for
// integration tests, the chaos suite and the bench command. Nothing here is
// mocked: ZooKeeper is Debian's zookeeper package, etcd is Debian's
// etcd-server and the KDC is Debian's krb5-kdc with krb5-admin-server's
// kadmin.local (the test command installs them when missing).
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago. It is
// chosen below Linux's ephemeral range (32768 and up), where outgoing
// connections and ":0" listeners never land: a process that the chaos suite
// kills and restarts on its port finds that port still free, however busy
// the machine (a soak once lost a replica to "address already in use"
// when another test's connection took its port during the restart). Like
// the kernel's own choice, each process walks the range in order from its
// own starting point, so it never hands out a port twice in a row and
// processes running side by side (test packages, a soak) stay apart.
func FreePort() (int, error) {
	for range 64 {
		port := int(freePortLow + portCursor.Add(1)%(freePortHigh-freePortLow))
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// The range FreePort picks from: below the ephemeral ports, above the
// well-known and most registered service ports.
const freePortLow, freePortHigh = 20000, 32768

// portCursor is where this process's walk through the range stands; it
// starts at a point drawn from the process id and the clock.
var portCursor = func() *atomic.Uint64 {
	var c atomic.Uint64
	c.Store(uint64(os.Getpid())*2654435761 + uint64(time.Now().UnixNano()))
	return &c
}()

// WaitFor polls cond until it returns nil or ctx ends; it returns the last
// error from cond (or ctx's) on timeout. The poll interval starts small and
// grows, so fast conditions are seen quickly without spinning.
func WaitFor(ctx context.Context, cond func() error) error {
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// Eventually fails t unless cond returns nil within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := WaitFor(ctx, cond); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}

// process is a child server started in its own process group, so that a
// kill takes its children (a JVM's helpers) too.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(name string, args []string, logPath string) (*process, error) {
	return startProcessEnv(name, args, logPath, nil)
}

// startProcessEnv is startProcess with extra environment variables.
func startProcessEnv(name string, args []string, logPath string, env []string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// signal sends sig to the process group and waits for the process to exit,
// escalating to SIGKILL after grace.
func (p *process) signal(sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *process) exited() error {
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exited")
		}
		return fmt.Errorf("exited: %w", p.err)
	default:
		return nil
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

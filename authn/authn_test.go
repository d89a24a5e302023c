package authn

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
	"github.com/hiveqd/hiveqd/tlsutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Tokens used by the tests: long enough for MinTokenLength, and distinct so
// a log or error leak of any of them is easy to spot.
const (
	tokAlice = "alice-0123456789abcdef-secret"
	tokAdmin = "admin-0123456789abcdef-secret"
	tokNew   = "fresh-0123456789abcdef-secret"
	tokWrong = "wrong-0123456789abcdef-secret"
)

var allTokens = []string{tokAlice, tokAdmin, tokNew, tokWrong}

// clusterEcho reports the caller's principal: GetTopology and WatchTopology
// as Topology.Self.Id "name/method/admin|user", Failover as the connector
// name.
type clusterEcho struct {
	hiveqv1.UnimplementedClusterServiceServer
}

func describe(ctx context.Context) string {
	p, ok := FromContext(ctx)
	if !ok {
		return "<none>"
	}
	role := "user"
	if p.Admin {
		role = "admin"
	}
	return p.Name + "/" + p.Method + "/" + role
}

func (clusterEcho) GetTopology(ctx context.Context, _ *hiveqv1.GetTopologyRequest) (*hiveqv1.GetTopologyResponse, error) {
	return &hiveqv1.GetTopologyResponse{Topology: &hiveqv1.Topology{Self: &hiveqv1.Replica{Id: describe(ctx)}}}, nil
}

func (clusterEcho) WatchTopology(_ *hiveqv1.WatchTopologyRequest, ss grpc.ServerStreamingServer[hiveqv1.WatchTopologyResponse]) error {
	return ss.Send(&hiveqv1.WatchTopologyResponse{Topology: &hiveqv1.Topology{Self: &hiveqv1.Replica{Id: describe(ss.Context())}}})
}

func (clusterEcho) Failover(ctx context.Context, _ *hiveqv1.FailoverRequest) (*hiveqv1.FailoverResponse, error) {
	return &hiveqv1.FailoverResponse{Connector: &hiveqv1.ConnectorState{Name: describe(ctx)}}, nil
}

type queryStub struct {
	hiveqv1.UnimplementedQueryServiceServer
}

// logBuffer collects slog output from server goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkNoSecrets fails when any test token shows up in s.
func checkNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, tok := range allTokens {
		if strings.Contains(s, tok) {
			t.Errorf("%s reveals a token: %s", what, s)
		}
	}
}

// fakeClock is the injected clock for reload checks.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// serve starts a real gRPC server on loopback TCP with the authenticator's
// interceptors, health, reflection and the hiveq.v1 services.
func serve(t *testing.T, a *Authenticator, tlsCfg *tls.Config) string {
	t.Helper()
	opts := a.ServerOptions()
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("hiveq.v1.QueryService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	hiveqv1.RegisterClusterServiceServer(srv, clusterEcho{})
	hiveqv1.RegisterQueryServiceServer(srv, queryStub{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Rename, as Kubernetes and careful operators do, so a reader never sees
	// half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// call runs one RPC kind with an optional token and returns what the echo
// service saw, or the error.
func call(ctx context.Context, cc *grpc.ClientConn, kind, token string) (string, error) {
	var opts []grpc.CallOption
	if token != "" {
		opts = append(opts, grpc.PerRPCCredentials(TokenCredentials{Token: token, AllowInsecure: true}))
	}
	cl := hiveqv1.NewClusterServiceClient(cc)
	switch kind {
	case "get":
		r, err := cl.GetTopology(ctx, &hiveqv1.GetTopologyRequest{}, opts...)
		if err != nil {
			return "", err
		}
		return r.GetTopology().GetSelf().GetId(), nil
	case "watch":
		s, err := cl.WatchTopology(ctx, &hiveqv1.WatchTopologyRequest{}, opts...)
		if err != nil {
			return "", err
		}
		r, err := s.Recv()
		if err != nil {
			return "", err
		}
		return r.GetTopology().GetSelf().GetId(), nil
	case "failover":
		r, err := cl.Failover(ctx, &hiveqv1.FailoverRequest{Connector: "hive"}, opts...)
		if err != nil {
			return "", err
		}
		return r.GetConnector().GetName(), nil
	case "execute":
		s, err := hiveqv1.NewQueryServiceClient(cc).Execute(ctx, &hiveqv1.ExecuteRequest{}, opts...)
		if err != nil {
			return "", err
		}
		_, err = s.Recv()
		return "", err
	case "health":
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "hiveq.v1.QueryService"}, opts...)
		if err != nil {
			return "", err
		}
		return r.GetStatus().String(), nil
	case "reflection":
		s, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx, opts...)
		if err != nil {
			return "", err
		}
		if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			return "", err
		}
		r, err := s.Recv()
		_ = s.CloseSend()
		if err != nil {
			return "", err
		}
		var names []string
		for _, svc := range r.GetListServicesResponse().GetService() {
			names = append(names, svc.GetName())
		}
		return strings.Join(names, ","), nil
	}
	panic("unknown kind " + kind)
}

type callCase struct {
	name     string
	kind     string
	token    string
	header   string // raw authorization header instead of token
	wantCode codes.Code
	want     string // substring of the result when OK
}

func runCases(t *testing.T, ctx context.Context, cc *grpc.ClientConn, cases []callCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctx
			if tc.header != "" {
				ctx = metadataCtx(ctx, tc.header)
			}
			got, err := call(ctx, cc, tc.kind, tc.token)
			if code := status.Code(err); code != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", code, err, tc.wantCode)
			}
			if err != nil {
				checkNoSecrets(t, "error", err.Error())
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

const tokenFile = `# hiveqd clients
` + tokAlice + `   alice

` + tokAdmin + ` ops admin   # trailing comment
`

func TestBearerTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, tokenFile)
	var logs logBuffer
	a, err := New(Options{TokenFile: path, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	cc := dial(t, serve(t, a, nil))
	runCases(t, ctxT(t), cc, []callCase{
		{name: "no token", kind: "get", wantCode: codes.Unauthenticated},
		{name: "wrong token", kind: "get", token: tokWrong, wantCode: codes.Unauthenticated},
		{name: "token of another scheme", kind: "get", header: "Basic " + tokAlice, wantCode: codes.Unauthenticated},
		{name: "bearer without token", kind: "get", header: "Bearer", wantCode: codes.Unauthenticated},
		{name: "empty bearer token", kind: "get", header: "Bearer ", wantCode: codes.Unauthenticated},
		{name: "token prefix", kind: "get", token: tokAlice[:len(tokAlice)-1], wantCode: codes.Unauthenticated},
		{name: "good token", kind: "get", token: tokAlice, want: "alice/token/user"},
		{name: "scheme is case-insensitive", kind: "get", header: "bearer " + tokAlice, want: "alice/token/user"},
		{name: "stream no token", kind: "watch", wantCode: codes.Unauthenticated},
		{name: "stream good token", kind: "watch", token: tokAlice, want: "alice/token/user"},
		{name: "query service reached", kind: "execute", token: tokAlice, wantCode: codes.Unimplemented},
		{name: "query service no token", kind: "execute", wantCode: codes.Unauthenticated},
		{name: "non-admin failover", kind: "failover", token: tokAlice, wantCode: codes.PermissionDenied},
		{name: "admin failover", kind: "failover", token: tokAdmin, want: "ops/token/admin"},
		{name: "failover no token", kind: "failover", wantCode: codes.Unauthenticated},
		{name: "health without credentials", kind: "health", want: "SERVING"},
		{name: "health with a wrong token", kind: "health", token: tokWrong, want: "SERVING"},
		{name: "reflection without credentials", kind: "reflection", want: "hiveq.v1.ClusterService"},
	})
	out := logs.String()
	checkNoSecrets(t, "log", out)
	if !strings.Contains(out, Fingerprint(tokWrong)) {
		t.Errorf("refusal log lacks the wrong token's fingerprint:\n%s", out)
	}
	if !strings.Contains(out, "refused admin method") {
		t.Errorf("no log of the refused admin call:\n%s", out)
	}
}

func TestTokenFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, tokAlice+" alice\n")
	var logs logBuffer
	clock := newFakeClock()
	a, err := New(Options{TokenFile: path, Logger: logs.logger(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cc := dial(t, serve(t, a, nil))
	ctx := ctxT(t)
	expect := func(token string, want codes.Code) {
		t.Helper()
		got, err := call(ctx, cc, "get", token)
		if status.Code(err) != want {
			t.Fatalf("token %s: code %v (%v, saw %q), want %v", Fingerprint(token), status.Code(err), err, got, want)
		}
	}
	expect(tokAlice, codes.OK)

	writeFile(t, path, tokNew+" alice\n")
	// Within the check interval the file is not looked at.
	clock.Advance(500 * time.Millisecond)
	expect(tokAlice, codes.OK)
	clock.Advance(600 * time.Millisecond)
	expect(tokAlice, codes.Unauthenticated)
	expect(tokNew, codes.OK)

	// A malformed file keeps the previous tokens, and says so once.
	writeFile(t, path, tokAlice+" alice superuser\nshort bob\n")
	clock.Advance(time.Second)
	expect(tokNew, codes.OK)
	expect(tokAlice, codes.Unauthenticated)
	clock.Advance(time.Second)
	expect(tokNew, codes.OK)
	if n := strings.Count(logs.String(), "token file not reloaded"); n != 1 {
		t.Errorf("bad file logged %d times, want once:\n%s", n, logs.String())
	}

	// A vanished file also keeps them.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	expect(tokNew, codes.OK)

	// A repaired file takes effect; Reload forces a read at once.
	writeFile(t, path, tokAdmin+" ops admin\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	expect(tokNew, codes.Unauthenticated)
	expect(tokAdmin, codes.OK)
	checkNoSecrets(t, "log", logs.String())
}

// TestReloadUnderLoad races calls against rewrites for the race detector.
func TestReloadUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	both := tokAlice + " alice\n" + tokNew + " alice\n"
	writeFile(t, path, both)
	clock := newFakeClock()
	a, err := New(Options{TokenFile: path, Logger: slog.New(slog.DiscardHandler), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cc := dial(t, serve(t, a, nil))
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				// tokAlice is in every version of the file.
				if _, err := call(ctx, cc, "get", tokAlice); err != nil {
					errs <- err
					return
				}
				if i == 0 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	for i := range 20 {
		if i%2 == 0 {
			writeFile(t, path, tokAlice+" alice\n")
		} else {
			writeFile(t, path, both)
		}
		clock.Advance(time.Second)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.GenerateTestPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := pki.IssueClient("ops")
	if err != nil {
		t.Fatal(err)
	}
	spiffe, err := pki.IssueClient("", "spiffe://hiveq/sa/etl")
	if err != nil {
		t.Fatal(err)
	}
	dnsOnly, err := pki.IssueClient("", "batch.hiveq.internal")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokens")
	writeFile(t, path, tokAlice+" alice\n")
	srvTLS, err := tlsutil.ServerConfig(pki.Server.CertFile, pki.Server.KeyFile, pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	a, err := New(Options{TokenFile: path, MTLS: true, Admins: []string{"ops"}, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, a, srvTLS)
	ctx := ctxT(t)
	conn := func(kp tlsutil.KeyPair) *grpc.ClientConn {
		cfg, err := tlsutil.ClientConfig(pki.CAFile, kp.CertFile, kp.KeyFile, "")
		if err != nil {
			t.Fatal(err)
		}
		return dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}

	t.Run("trusted client", func(t *testing.T) {
		runCases(t, ctx, conn(pki.Client), []callCase{
			{name: "principal from CN", kind: "get", want: "client/mtls/user"},
			{name: "stream", kind: "watch", want: "client/mtls/user"},
			{name: "non-admin failover", kind: "failover", wantCode: codes.PermissionDenied},
			{name: "token overrides certificate", kind: "get", token: tokAlice, want: "alice/token/user"},
			{name: "wrong token refused despite certificate", kind: "get", token: tokWrong, wantCode: codes.Unauthenticated},
			{name: "health", kind: "health", want: "SERVING"},
		})
	})
	t.Run("admin client", func(t *testing.T) {
		runCases(t, ctx, conn(ops), []callCase{
			{name: "failover", kind: "failover", want: "ops/mtls/admin"},
		})
	})
	t.Run("SAN-only clients", func(t *testing.T) {
		runCases(t, ctx, conn(spiffe), []callCase{{name: "URI SAN", kind: "get", want: "spiffe://hiveq/sa/etl/mtls/user"}})
		runCases(t, ctx, conn(dnsOnly), []callCase{{name: "DNS SAN", kind: "get", want: "batch.hiveq.internal/mtls/user"}})
	})
	t.Run("untrusted client refused at the handshake", func(t *testing.T) {
		for _, kp := range []tlsutil.KeyPair{pki.UntrustedClient, {}} {
			before := logs.String()
			_, err := call(ctx, conn(kp), "health", "")
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("cert %q: code %v (%v), want Unavailable: the handshake must fail", kp.CertFile, status.Code(err), err)
			}
			// Nothing reached the interceptors.
			if logs.String() != before {
				t.Fatalf("interceptors saw the refused connection:\n%s", strings.TrimPrefix(logs.String(), before))
			}
		}
	})
	checkNoSecrets(t, "log", logs.String())
}

func TestTokensOverServerOnlyTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.GenerateTestPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokens")
	writeFile(t, path, tokAlice+" alice\n")
	f := Flags{TLSCert: pki.Server.CertFile, TLSKey: pki.Server.KeyFile, TokenFile: path}
	a, tlsCfg, err := f.Build(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg == nil || tlsCfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("want server-only TLS, got %+v", tlsCfg)
	}
	addr := serve(t, a, tlsCfg)
	cfg, err := tlsutil.ClientConfig(pki.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	creds := grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	// Over TLS the credentials need no AllowInsecure.
	cc := dial(t, addr, creds, grpc.WithPerRPCCredentials(TokenCredentials{Token: tokAlice}))
	if got, err := call(ctx, cc, "get", ""); err != nil || got != "alice/token/user" {
		t.Fatalf("got %q, %v", got, err)
	}
	runCases(t, ctx, dial(t, addr, creds), []callCase{
		{name: "no token", kind: "get", wantCode: codes.Unauthenticated},
		{name: "health", kind: "health", want: "SERVING"},
	})
}

func TestAuthenticationOff(t *testing.T) {
	for _, principal := range []string{"", "gateway"} {
		a, err := New(Options{ServicePrincipal: principal, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if a.Enabled() {
			t.Fatal("enabled without credentials configured")
		}
		want := principal
		if want == "" {
			want = DefaultServicePrincipal
		}
		runCases(t, ctxT(t), dial(t, serve(t, a, nil)), []callCase{
			{name: "unary " + want, kind: "get", want: want + "/none/admin"},
			{name: "stream " + want, kind: "watch", want: want + "/none/admin"},
			{name: "failover " + want, kind: "failover", want: want + "/none/admin"},
			{name: "any token ignored " + want, kind: "get", token: tokWrong, want: want + "/none/admin"},
			{name: "health " + want, kind: "health", want: "SERVING"},
		})
	}
}

func TestConfigurableExemptAndAdminMethods(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, tokAlice+" alice\n")
	a, err := New(Options{
		TokenFile:      path,
		ExemptPrefixes: []string{},                                       // nothing exempt, not even health
		AdminMethods:   []string{"/hiveq.v1.ClusterService/GetTopology"}, // and Failover is open
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, ctxT(t), dial(t, serve(t, a, nil)), []callCase{
		{name: "health needs credentials", kind: "health", wantCode: codes.Unauthenticated},
		{name: "health with token", kind: "health", token: tokAlice, want: "SERVING"},
		{name: "admin-only GetTopology", kind: "get", token: tokAlice, wantCode: codes.PermissionDenied},
		{name: "open failover", kind: "failover", token: tokAlice, want: "alice/token/user"},
	})
}

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []string // principal[+admin] in order
		wantErr []string
	}{
		{name: "comments, blanks, CRLF, admin", file: "# c\r\n\r\n" + tokAlice + " alice\r\n  " + tokAdmin + "\tops\tADMIN # x\n", want: []string{"alice", "ops+admin"}},
		{name: "empty", file: "", want: nil},
		{name: "only comments", file: "# nothing\n   # here\n", want: nil},
		{name: "principal with punctuation", file: tokAlice + " svc:etl@example.com\n", want: []string{"svc:etl@example.com"}},
		{name: "one field", file: tokAlice + "\n", wantErr: []string{"line 1: want TOKEN PRINCIPAL [admin], got 1 fields"}},
		{name: "four fields", file: "# x\n" + tokAlice + " alice admin extra\n", wantErr: []string{"line 2: want TOKEN PRINCIPAL [admin], got 4 fields"}},
		{name: "bad role", file: tokAlice + " alice root\n", wantErr: []string{"line 1: third field must be admin"}},
		{name: "short token", file: "short alice\n", wantErr: []string{"line 1: token shorter than 16"}},
		{name: "duplicate", file: tokAlice + " alice\n" + tokAlice + " bob\n", wantErr: []string{"line 2: token repeats the one on line 1"}},
		{name: "every error at once", file: "short a\n" + tokAlice + "\n" + tokAdmin + " ops boss\n", wantErr: []string{"line 1:", "line 2:", "line 3:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := parseTokens([]byte(tc.file))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("want an error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
				checkNoSecrets(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range set.entries {
				s := e.principal
				if e.admin {
					s += "+admin"
				}
				got = append(got, s)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	set, err := parseTokens([]byte(tokAlice + " alice\n" + tokAdmin + " ops admin\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token, want string
		ok          bool
	}{
		{tokAlice, "alice", true},
		{tokAdmin, "ops", true},
		{tokWrong, "", false},
		{"", "", false},
		{tokAlice + " ", "", false},
		{strings.ToUpper(tokAlice), "", false},
	}
	for _, tc := range tests {
		e, ok := set.lookup(tc.token)
		if ok != tc.ok || e.principal != tc.want {
			t.Errorf("lookup(%s) = %q, %v; want %q, %v", Fingerprint(tc.token), e.principal, ok, tc.want, tc.ok)
		}
	}
	if _, ok := (*tokenSet)(nil).lookup(tokAlice); ok {
		t.Error("nil set matched")
	}
}

func TestNewAndBuildErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, tokAlice+" alice root\n")
	discard := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{"missing token file", func() error {
			_, err := New(Options{TokenFile: filepath.Join(dir, "nope"), Logger: discard})
			return err
		}, "no such file"},
		{"malformed token file", func() error {
			_, err := New(Options{TokenFile: bad, Logger: discard})
			return err
		}, "line 1: third field must be admin"},
		{"admins without mTLS", func() error {
			_, err := New(Options{Admins: []string{"ops"}, Logger: discard})
			return err
		}, "mTLS is off"},
		{"client CA without server cert", func() error {
			_, _, err := (&Flags{TLSClientCA: "ca.pem"}).Build(discard)
			return err
		}, "--tls-client-ca needs"},
		{"server cert without key", func() error {
			_, _, err := (&Flags{TLSCert: "cert.pem"}).Build(discard)
			return err
		}, "both required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
			checkNoSecrets(t, "error", err.Error())
		})
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint(tokAlice)
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+12 || strings.Contains(fp, tokAlice) {
		t.Fatalf("bad fingerprint %q", fp)
	}
	if fp == Fingerprint(tokAdmin) || fp != Fingerprint(tokAlice) {
		t.Fatal("fingerprint not a function of the token")
	}
}

func metadataCtx(ctx context.Context, header string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", header)
}

// BenchmarkAuthenticate measures the per-call cost of a token check against
// a file of 100 tokens (every entry is compared, by design).
func BenchmarkAuthenticate(b *testing.B) {
	var sb strings.Builder
	for i := range 99 {
		fmt.Fprintf(&sb, "token-%04d-0123456789abcdef user%d\n", i, i)
	}
	sb.WriteString(tokAlice + " alice\n")
	path := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := New(Options{TokenFile: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tokAlice))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

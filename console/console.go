// Package console is hiveqd's web console: a server-rendered page
// (html/template, no JavaScript framework) showing the cluster, each
// connector's route and candidates, the recent route changes and the
// queries running on this replica, updated live over server-sent events.
// Admins can cancel a query and fail a connector over.
//
// It authenticates like the gRPC port: the same Authenticate function sees
// a bearer token (from the authorization header, or from the HttpOnly,
// SameSite=Strict cookie the login form sets) and the verified client
// certificate of a TLS connection. Without credentials it shows only the
// login form. Every POST carries a CSRF token bound to the credentials and
// must come from the same origin.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/hiveqd/hiveqd/authn"
	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/query"
	"github.com/hiveqd/hiveqd/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

// CookieName holds the bearer token the login form accepted.
const CookieName = "hiveqd_token"

// Queries is the query engine as the console uses it.
type Queries interface {
	Snapshot() []query.RunningQuery
	Cancel(ctx context.Context, queryID string, caller query.Caller) (query.State, error)
}

// Config wires the console to the replica.
type Config struct {
	// Topology is this replica's view; Watch sends it after each change
	// until ctx ends (cluster.Coordinator.WatchTopology).
	Topology func() cluster.Topology
	Watch    func(ctx context.Context) <-chan cluster.Topology
	Queries  Queries
	History  *History
	// Authenticate is the gRPC port's (authn.Authenticator.Authenticate):
	// it gets a context with the request's authorization metadata and its
	// TLS peer.
	Authenticate func(ctx context.Context) (context.Context, error)
	// Failover is the ClusterService.Failover code path (same checks,
	// forwarded to the leader from a follower).
	Failover func(ctx context.Context, connector string, expectedEpoch uint64, reason string) error
	// Refresh is how often the page is re-sent without a topology change
	// (running queries move); default 2s.
	Refresh time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Handler serves the console under /console/.
type Handler struct {
	cfg    Config
	tmpl   *template.Template
	secret []byte // keys CSRF tokens; new per process
	mux    *http.ServeMux
}

// New returns the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Topology == nil || cfg.Queries == nil || cfg.Authenticate == nil {
		return nil, errors.New("console: Topology, Queries and Authenticate are required")
	}
	if cfg.History == nil {
		cfg.History = NewHistory(0, time.Hour, cfg.Now)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, tmpl: tmpl, secret: make([]byte, 32), mux: http.NewServeMux()}
	if _, err := rand.Read(h.secret); err != nil {
		return nil, err
	}
	h.mux.HandleFunc("GET /console/{$}", h.page)
	h.mux.HandleFunc("GET /console/events", h.events)
	h.mux.HandleFunc("POST /console/login", h.login)
	h.mux.HandleFunc("POST /console/logout", h.logout)
	h.mux.HandleFunc("POST /console/cancel", h.admin(h.cancel))
	h.mux.HandleFunc("POST /console/failover", h.admin(h.failover))
	h.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin") // "no-referrer" makes browsers send "Origin: null"
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// session is an authenticated request.
type session struct {
	authn.Principal
	credential string // what the CSRF token is bound to
	header     string // the authorization value, forwarded to the leader
}

// authenticate runs the gRPC port's authentication on the request.
func (h *Handler) authenticate(r *http.Request) (session, error) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
			authz = "Bearer " + c.Value
		}
	}
	ctx := r.Context()
	if authz != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authz))
	}
	cred := authz
	if r.TLS != nil {
		ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: *r.TLS}})
		if len(r.TLS.PeerCertificates) > 0 && cred == "" {
			cred = string(r.TLS.PeerCertificates[0].Raw)
		}
	}
	actx, err := h.cfg.Authenticate(ctx)
	if err != nil {
		return session{}, err
	}
	p, ok := authn.FromContext(actx)
	if !ok {
		return session{}, errors.New("no principal")
	}
	return session{Principal: p, credential: cred, header: authz}, nil
}

func (h *Handler) csrf(s session) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(s.Name + "\x00" + s.credential))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkPost refuses cross-origin posts and posts without the session's
// CSRF token.
func (h *Handler) checkPost(r *http.Request, s *session) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return errors.New("cross-site request refused")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errors.New("cross-origin request refused")
		}
	}
	if s == nil {
		return nil
	}
	got := r.PostFormValue("csrf")
	if subtle.ConstantTimeCompare([]byte(got), []byte(h.csrf(*s))) != 1 {
		return errors.New("missing or stale CSRF token: reload the page")
	}
	return nil
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	s, err := h.authenticate(r)
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		h.render(w, "login.html", map[string]any{"Error": r.URL.Query().Get("error")})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	h.render(w, "page.html", h.view(s, r.URL.Query().Get("msg")))
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	if err := h.tmpl.ExecuteTemplate(w, name, data); err != nil {
		h.cfg.Logger.Warn("console: render", "template", name, "err", err)
	}
}

// View is what the templates render.
type View struct {
	Principal authn.Principal
	CSRF      string
	Message   string
	Now       time.Time
	Topology  cluster.Topology
	Changes   []Change
	Queries   []query.RunningQuery
}

func (h *Handler) view(s session, msg string) View {
	return View{
		Principal: s.Principal, CSRF: h.csrf(s), Message: msg, Now: h.cfg.Now(),
		Topology: h.cfg.Topology(), Changes: h.cfg.History.Changes(), Queries: h.cfg.Queries.Snapshot(),
	}
}

// events streams the state section as server-sent events: at once, after
// each topology change, and every Refresh.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	s, err := h.authenticate(r)
	if err != nil {
		http.Error(w, "credentials required", http.StatusUnauthorized)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var watch <-chan cluster.Topology
	if h.cfg.Watch != nil {
		watch = h.cfg.Watch(ctx)
	}
	tick := time.NewTicker(h.cfg.Refresh)
	defer tick.Stop()
	for {
		var b strings.Builder
		if err := h.tmpl.ExecuteTemplate(&b, "state", h.view(s, "")); err != nil {
			return
		}
		fmt.Fprint(w, "event: state\n")
		for _, line := range strings.Split(b.String(), "\n") {
			fmt.Fprintf(w, "data: %s\n", line)
		}
		fmt.Fprint(w, "\n")
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case _, ok := <-watch:
			if !ok {
				watch = nil
			}
		case <-tick.C:
		}
	}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := h.checkPost(r, nil); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	r.Header.Set("Authorization", "Bearer "+token)
	if _, err := h.authenticate(r); err != nil || token == "" {
		http.Redirect(w, r, "/console/?error=invalid+token", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/console/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.checkPost(r, nil); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// admin wraps an action: authenticated, admin, same origin, CSRF token.
func (h *Handler) admin(f func(r *http.Request, s session) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := h.authenticate(r)
		if err != nil {
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		if err := h.checkPost(r, &s); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if !s.Admin {
			http.Error(w, fmt.Sprintf("%q is not an admin", s.Name), http.StatusForbidden)
			return
		}
		msg, err := f(r, s)
		if err != nil {
			msg = "error: " + err.Error()
		}
		h.cfg.Logger.Info("console action", "path", r.URL.Path, "principal", s.Name, "result", msg)
		if r.Header.Get("Accept") == "application/json" || r.PostFormValue("format") == "text" {
			if err != nil {
				http.Error(w, msg, http.StatusConflict)
				return
			}
			fmt.Fprintln(w, msg)
			return
		}
		http.Redirect(w, r, "/console/?msg="+url.QueryEscape(msg), http.StatusSeeOther)
	}
}

func (h *Handler) cancel(r *http.Request, s session) (string, error) {
	id := r.PostFormValue("query_id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := h.cfg.Queries.Cancel(ctx, id, query.Caller{User: s.Name, Admin: s.Admin})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("query %s: %s", id, st), nil
}

func (h *Handler) failover(r *http.Request, s session) (string, error) {
	if h.cfg.Failover == nil {
		return "", errors.New("failover is not available on this replica")
	}
	connector := r.PostFormValue("connector")
	var epoch uint64
	if v := r.PostFormValue("epoch"); v != "" {
		var err error
		if epoch, err = strconv.ParseUint(v, 10, 64); err != nil {
			return "", fmt.Errorf("bad epoch %q", v)
		}
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		reason = "manual failover from the console by " + s.Name
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if s.header != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", s.header))
	}
	if err := h.cfg.Failover(ctx, connector, epoch, reason); err != nil {
		return "", err
	}
	return "connector " + connector + " failed over", nil
}

// traffic is a candidate's health as seen from the queries' own calls.
// The registry reports only probe health today; this column is where
// traffic health goes once candidates carry it.
func traffic(registry.CandidateHealth) string { return "not reported" }

var funcs = template.FuncMap{
	"traffic": traffic,
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("15:04:05")
	},
	"dur": func(d time.Duration) string {
		if d < time.Second {
			return d.Truncate(time.Millisecond).String()
		}
		return d.Truncate(100 * time.Millisecond).String()
	},
	"orNone": func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	},
}

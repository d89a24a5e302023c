package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/hiveqd/hiveqd/authn"
	"github.com/hiveqd/hiveqd/cluster"
	"github.com/hiveqd/hiveqd/query"
)

type noQueries struct{ cancelled []string }

func (noQueries) Snapshot() []query.RunningQuery { return nil }
func (q *noQueries) Cancel(_ context.Context, id string, _ query.Caller) (query.State, error) {
	q.cancelled = append(q.cancelled, id)
	return query.StateCanceled, nil
}

// tokenAuth accepts "Bearer admin" (an admin) and "Bearer user".
func tokenAuth(ctx context.Context) (context.Context, error) {
	v := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(v) == 1 && (v[0] == "Bearer admin" || v[0] == "Bearer user") {
		name := strings.TrimPrefix(v[0], "Bearer ")
		return authn.NewContext(ctx, authn.Principal{Name: name, Admin: name == "admin", Method: authn.MethodToken}), nil
	}
	return nil, errors.New("credentials required")
}

func TestPostChecks(t *testing.T) {
	q := &noQueries{}
	h, err := New(Config{Topology: func() cluster.Topology { return cluster.Topology{Cluster: "c"} }, Queries: q, Authenticate: tokenAuth})
	if err != nil {
		t.Fatal(err)
	}
	csrf := func(name string) string {
		return h.csrf(session{Principal: authn.Principal{Name: name}, credential: "Bearer " + name})
	}
	for _, tc := range []struct {
		name, authz, csrf string
		header            map[string]string
		want              int
	}{
		{"admin", "Bearer admin", csrf("admin"), nil, http.StatusOK},
		{"no credentials", "", csrf("admin"), nil, http.StatusUnauthorized},
		{"no CSRF token", "Bearer admin", "", nil, http.StatusForbidden},
		{"another caller's CSRF token", "Bearer admin", csrf("user"), nil, http.StatusForbidden},
		{"not an admin", "Bearer user", csrf("user"), nil, http.StatusForbidden},
		{"cross origin", "Bearer admin", csrf("admin"), map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"opaque origin", "Bearer admin", csrf("admin"), map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross site", "Bearer admin", csrf("admin"), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same origin", "Bearer admin", csrf("admin"), map[string]string{"Origin": "http://console.test", "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"query_id": {"q1"}, "csrf": {tc.csrf}, "format": {"text"}}
			req := httptest.NewRequest(http.MethodPost, "http://console.test/console/cancel", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
	if len(q.cancelled) != 2 {
		t.Errorf("cancelled %v, want q1 twice (the two allowed posts)", q.cancelled)
	}
}

func TestPageWithoutCredentialsShowsNothing(t *testing.T) {
	h, err := New(Config{Topology: func() cluster.Topology { return cluster.Topology{Cluster: "secret-cluster"} },
		Queries: &noQueries{}, Authenticate: tokenAuth})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/console/", "/console/events"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://console.test"+path, nil))
		if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "secret-cluster") {
			t.Errorf("%s: %d\n%s", path, rec.Code, rec.Body)
		}
	}
	// The login cookie it sets is HttpOnly and SameSite=Strict.
	form := url.Values{"token": {"user"}}
	req := httptest.NewRequest(http.MethodPost, "http://console.test/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	c := rec.Result().Cookies()
	if len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Value != "user" {
		t.Fatalf("cookies %+v", c)
	}
	req = httptest.NewRequest(http.MethodGet, "http://console.test/console/", nil)
	req.AddCookie(c[0])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "secret-cluster") {
		t.Fatalf("with the cookie: %d", rec.Code)
	}
}

package hs2sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// ControlHandler is the HTTP control endpoint:
//
//	POST /fault/crash | /fault/hang | /fault/heal
//	POST /fault/holdopen   (OpenSession waits until heal; open sessions work)
//	POST /fault/slow?delay=200ms
//	POST /fault/pause?for=5s
//	POST /fault/fail?on=true
//	POST /fault/deregister | /fault/register
//	POST /fault/drop?rows=N
//	POST /pace?rows_per_second=N&fetch_delay=1ms
//	POST /active?on=true
//	GET  /stats   (JSON Stats)
//	GET  /healthz
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	post := func(path string, f func(r *http.Request) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if err := f(r); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
		})
	}
	post("/fault/crash", func(*http.Request) error { s.Crash(); return nil })
	post("/fault/hang", func(*http.Request) error { s.Hang(); return nil })
	post("/fault/holdopen", func(*http.Request) error { s.HoldOpenSessions(); return nil })
	post("/fault/heal", func(*http.Request) error { s.Heal(); return nil })
	post("/fault/pause", func(r *http.Request) error {
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil {
			return err
		}
		s.Pause(d)
		return nil
	})
	post("/fault/slow", func(r *http.Request) error {
		d, err := time.ParseDuration(r.URL.Query().Get("delay"))
		if err != nil {
			return err
		}
		s.SetSlow(d)
		return nil
	})
	post("/fault/fail", func(r *http.Request) error {
		on, err := boolParam(r, "on")
		if err != nil {
			return err
		}
		s.FailQueries(on)
		return nil
	})
	post("/fault/deregister", func(*http.Request) error { return s.Deregister() })
	post("/fault/register", func(*http.Request) error { return s.Register() })
	post("/fault/drop", func(r *http.Request) error {
		n, err := strconv.ParseInt(r.URL.Query().Get("rows"), 10, 64)
		if err != nil {
			return err
		}
		s.DropAfterRows(n)
		return nil
	})
	post("/pace", func(r *http.Request) error {
		q := r.URL.Query()
		if v := q.Get("rows_per_second"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return err
			}
			s.SetPacing(n)
		}
		if v := q.Get("fetch_delay"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			s.SetFetchDelay(d)
		}
		return nil
	})
	post("/active", func(r *http.Request) error {
		on, err := boolParam(r, "on")
		if err != nil {
			return err
		}
		return s.SetActive(on)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return true, nil
	}
	return strconv.ParseBool(v)
}

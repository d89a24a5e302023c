package query

import "context"

// Front-end names, the "frontend" of an Observation: which protocol a
// query came in by.
const (
	FrontendHiveQ     = "hiveq.v1"
	FrontendFlightSQL = "flightsql"
)

// Observation names what an observer follows: the front-end that sent the
// query and its connector ("" already resolved to the default; an unknown
// name as the client sent it).
type Observation struct {
	Frontend  string
	Connector string
}

// ObserveFunc is called as a query starts, with the caller's context. It
// returns the query's QueryObserver, or nil.
type ObserveFunc func(ctx context.Context, o Observation) QueryObserver

// QueryObserver follows one query, for metrics and tracing. Its methods
// run on the stream's path and must be quick.
type QueryObserver interface {
	// Sent sees each event once the front-end took it.
	Sent(ev Event)
	// Done sees how the query ended: nil, or the engine's error (its Code
	// says how).
	Done(err *Error)
}

// Observers combines observe functions, skipping nil ones; nil if none is
// left.
func Observers(fs ...ObserveFunc) ObserveFunc {
	var live []ObserveFunc
	for _, f := range fs {
		if f != nil {
			live = append(live, f)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return func(ctx context.Context, o Observation) QueryObserver {
		var m multiObserver
		for _, f := range live {
			if qo := f(ctx, o); qo != nil {
				m = append(m, qo)
			}
		}
		switch len(m) {
		case 0:
			return nil // a nil multiObserver would be a non-nil interface
		case 1:
			return m[0]
		}
		return m
	}
}

type multiObserver []QueryObserver

func (m multiObserver) Sent(ev Event) {
	for _, o := range m {
		o.Sent(ev)
	}
}

func (m multiObserver) Done(err *Error) {
	for _, o := range m {
		o.Done(err)
	}
}

// observe wraps a query's emit function in Config.Observe; done reports
// the query's end to the observer and returns err unchanged. Without an
// observer emit is returned as it is.
func (e *Engine) observe(ctx context.Context, req *Request, emit func(Event) error) (func(Event) error, func(error) error) {
	if e.cfg.Observe == nil {
		return emit, func(err error) error { return err }
	}
	connector := req.Connector
	if connector == "" {
		connector = e.cfg.DefaultConnector
	}
	o := e.cfg.Observe(ctx, Observation{Frontend: req.Frontend, Connector: connector})
	if o == nil {
		return emit, func(err error) error { return err }
	}
	return func(ev Event) error {
			if err := emit(ev); err != nil {
				return err
			}
			o.Sent(ev)
			return nil
		}, func(err error) error {
			o.Done(AsError(err))
			return err
		}
}

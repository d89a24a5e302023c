package service

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/query"
)

// ObserveFunc is called as an Execute call starts, with the stream's
// context and the connector it asks for ("" already resolved to the
// default; an unknown name is passed as the client sent it). It returns
// the call's QueryObserver, or nil.
type ObserveFunc func(ctx context.Context, connector string) QueryObserver

// QueryObserver follows one Execute call, for metrics and tracing. Its
// methods run on the stream's path and must be quick.
type QueryObserver interface {
	// Sent sees each event once it was sent to the client.
	Sent(ev query.Event)
	// Done sees the call's final gRPC code.
	Done(code codes.Code)
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
	return func(ctx context.Context, connector string) QueryObserver {
		var m multiObserver
		for _, f := range live {
			if o := f(ctx, connector); o != nil {
				m = append(m, o)
			}
		}
		return m
	}
}

type multiObserver []QueryObserver

func (m multiObserver) Sent(ev query.Event) {
	for _, o := range m {
		o.Sent(ev)
	}
}

func (m multiObserver) Done(code codes.Code) {
	for _, o := range m {
		o.Done(code)
	}
}

// observe wraps an Execute call's emit function in Config.Observe. done
// reports the call's final error to the observer and returns it. Without
// an observer emit is returned as it is.
func (s *Service) observe(ctx context.Context, connector string, emit func(query.Event) error) (func(query.Event) error, func(error) error) {
	if s.observeFn == nil {
		return emit, func(err error) error { return err }
	}
	if connector == "" {
		connector = s.engine.DefaultConnector()
	}
	o := s.observeFn(ctx, connector)
	if o == nil {
		return emit, func(err error) error { return err }
	}
	return func(ev query.Event) error {
			if err := emit(ev); err != nil {
				return err
			}
			o.Sent(ev)
			return nil
		}, func(err error) error {
			o.Done(status.Code(err))
			return err
		}
}

package hs2

import (
	"context"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// Interrupt cancels the operation over a new connection, without waiting
// for the session's call in flight. A session carries one call at a time,
// and HS2 may hold a GetOperationStatus for its whole long poll (5s); HS2
// looks operation handles up server-wide, so CancelOperation needs no
// session of its own. The poll in flight then returns with CANCELED, and
// the operation can be closed on its session as usual.
func (o *Operation) Interrupt(ctx context.Context) error {
	if o.closed.Load() {
		return nil
	}
	s := o.s
	tr, err := dial(ctx, s.ep, s.opts)
	if err != nil {
		return err
	}
	side := &Session{ep: s.ep, opts: s.opts, server: s.server, tr: tr, lock: make(chan struct{}, 1)}
	defer tr.Close()
	conf := thrift.TConfiguration{MaxMessageSize: maxMessageSize}
	proto := thrift.NewTBinaryProtocolConf(tr, &conf)
	side.client = hiveserver.NewTCLIServiceClientProtocol(tr, proto, proto)
	return side.call(ctx, "CancelOperation", false, func(ctx context.Context) (*hiveserver.TStatus, error) {
		resp, err := side.client.CancelOperation(ctx, &hiveserver.TCancelOperationReq{OperationHandle: o.h})
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	})
}

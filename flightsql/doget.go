package flightsql

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
)

// DoGet streams a statement's result through recordWriter (no copies of
// the Arrow buffers before gRPC's transport); other tickets (metadata,
// SqlInfo) go to arrow-go's Flight SQL server.
func (f *flightService) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	tq, err := flightsql.GetStatementQueryTicket(t)
	if err != nil {
		return f.FlightServer.DoGet(t, stream)
	}
	schema, chunks, err := f.srv.DoGetStatement(stream.Context(), tq)
	if err != nil {
		return err
	}
	return streamChunks(stream, schema, chunks)
}

// streamChunks writes schema, then chunks until they end, an error chunk
// comes or the client goes. Every record it receives is released, on
// every path.
func streamChunks(stream flight.FlightService_DoGetServer, schema *arrow.Schema, chunks <-chan flight.StreamChunk) error {
	defer func() {
		for c := range chunks {
			if c.Data != nil {
				c.Data.Release()
			}
		}
	}()
	w := newRecordWriter(stream, schema)
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-chunks:
			if !ok {
				return w.close()
			}
			if c.Err != nil {
				return c.Err
			}
			if c.Data == nil {
				continue
			}
			err := w.write(c.Data)
			c.Data.Release()
			if err != nil {
				return err
			}
		}
	}
}

package flightsql

import (
	"context"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/schema_ref"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/query"
)

// ServerName is FLIGHT_SQL_SERVER_NAME.
const ServerName = "hiveqd"

// registerSqlInfo states what is true of hiveqd on Hive: it forwards any
// statement (not read-only), has no transactions, cancels, quotes
// identifiers with backticks and folds unquoted and quoted ones to lower
// case; HiveQL covers the ODBC minimum grammar (a bitmask of
// SupportedSqlGrammar: 1 = SQL_MINIMUM_GRAMMAR), not the core one.
func (s *Server) registerSqlInfo() error {
	version := s.cfg.Version
	if version == "" {
		version = "dev"
	}
	infos := []struct {
		id  flightsql.SqlInfo
		val any
	}{
		{flightsql.SqlInfoFlightSqlServerName, ServerName},
		{flightsql.SqlInfoFlightSqlServerVersion, version},
		{flightsql.SqlInfoFlightSqlServerArrowVersion, "18"},
		{flightsql.SqlInfoFlightSqlServerReadOnly, false},
		{flightsql.SqlInfoFlightSqlServerSql, true},
		{flightsql.SqlInfoFlightSqlServerSubstrait, false},
		{flightsql.SqlInfoFlightSqlServerTransaction, int32(0)}, // SQL_SUPPORTED_TRANSACTION_NONE
		{flightsql.SqlInfoFlightSqlServerCancel, true},
		{flightsql.SqlInfoTransactionsSupported, false},
		{flightsql.SqlInfoDDLCatalog, false},
		{flightsql.SqlInfoDDLSchema, true},
		{flightsql.SqlInfoDDLTable, true},
		{flightsql.SqlInfoIdentifierCase, int32(flightsql.SqlCaseSensitivityLowerCase)},
		{flightsql.SqlInfoIdentifierQuoteChar, "`"},
		{flightsql.SqlInfoQuotedIdentifierCase, int32(flightsql.SqlCaseSensitivityLowerCase)},
		{flightsql.SqlInfoSupportedGrammar, int32(1)},
		{flightsql.SqlInfoSupportsColumnAliasing, true},
		{flightsql.SqlInfoNullPlusNullIsNull, true},
	}
	for _, i := range infos {
		if err := s.RegisterSqlInfo(i.id, i.val); err != nil {
			return err
		}
	}
	return nil
}

// metaInfo is the FlightInfo of a metadata command: its ticket is the
// command itself, run on DoGet.
func (s *Server) metaInfo(desc *flight.FlightDescriptor, schema *arrow.Schema) *flight.FlightInfo {
	return &flight.FlightInfo{
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: desc.Cmd}}},
		FlightDescriptor: desc,
		Schema:           flight.SerializeSchema(schema, s.alloc),
		TotalRecords:     -1,
		TotalBytes:       -1,
	}
}

// metaRows runs an HS2 metadata call through the engine (routing,
// failover, the pool, impersonation) and returns its rows by column name.
func (s *Server) metaRows(ctx context.Context, m hs2.MetaRequest) ([]map[string]any, error) {
	var names []string
	var rows []map[string]any
	err := s.cfg.Engine.Execute(ctx, query.Request{
		Meta: &m, User: s.cfg.UserFromContext(ctx), Frontend: query.FrontendFlightSQL,
	}, func(ev query.Event) error {
		switch ev.Kind {
		case query.EventSchema:
			for _, c := range ev.Schema {
				n := strings.ToUpper(c.Name)
				if i := strings.LastIndexByte(n, '.'); i >= 0 {
					n = n[i+1:]
				}
				names = append(names, n)
			}
		case query.EventBatch:
			for r := 0; r < ev.Batch.Rows; r++ {
				row := make(map[string]any, len(names))
				for c := range ev.Batch.Columns {
					if c < len(names) {
						row[names[c]] = ev.Batch.Columns[c].Value(r)
					}
				}
				rows = append(rows, row)
			}
		}
		return nil
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return rows, nil
}

// str is a metadata value as text; "" for NULL.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// appendCatalog appends HS2's catalog: Hive has none and HS2 reports "",
// which Flight SQL says with NULL.
func appendCatalog(b *array.StringBuilder, v any) {
	if s := str(v); s != "" {
		b.Append(s)
		return
	}
	b.AppendNull()
}

// stream sends one record.
func stream(schema *arrow.Schema, rec arrow.RecordBatch) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: rec}
	close(ch)
	return schema, ch, nil
}

// GetFlightInfoCatalogs: HS2 GetCatalogs.
func (s *Server) GetFlightInfoCatalogs(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metaInfo(desc, schema_ref.Catalogs), nil
}

func (s *Server) DoGetCatalogs(ctx context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	rows, err := s.metaRows(ctx, hs2.MetaRequest{Call: hs2.MetaCatalogs})
	if err != nil {
		return nil, nil, err
	}
	b := array.NewRecordBuilder(s.alloc, schema_ref.Catalogs)
	defer b.Release()
	for _, r := range rows {
		if c := str(r["TABLE_CAT"]); c != "" {
			b.Field(0).(*array.StringBuilder).Append(c)
		}
	}
	return stream(schema_ref.Catalogs, b.NewRecordBatch())
}

// GetFlightInfoSchemas: HS2 GetSchemas (Hive databases).
func (s *Server) GetFlightInfoSchemas(_ context.Context, _ flightsql.GetDBSchemas, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metaInfo(desc, schema_ref.DBSchemas), nil
}

func (s *Server) DoGetDBSchemas(ctx context.Context, cmd flightsql.GetDBSchemas) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	if c := cmd.GetCatalog(); c != nil && *c != "" {
		return stream(schema_ref.DBSchemas, emptyRecord(s, schema_ref.DBSchemas)) // Hive has no catalogs
	}
	rows, err := s.metaRows(ctx, hs2.MetaRequest{Call: hs2.MetaSchemas, Schema: cmd.GetDBSchemaFilterPattern()})
	if err != nil {
		return nil, nil, err
	}
	b := array.NewRecordBuilder(s.alloc, schema_ref.DBSchemas)
	defer b.Release()
	for _, r := range rows {
		appendCatalog(b.Field(0).(*array.StringBuilder), r["TABLE_CATALOG"])
		b.Field(1).(*array.StringBuilder).Append(str(r["TABLE_SCHEM"]))
	}
	return stream(schema_ref.DBSchemas, b.NewRecordBatch())
}

func emptyRecord(s *Server, schema *arrow.Schema) arrow.RecordBatch {
	b := array.NewRecordBuilder(s.alloc, schema)
	defer b.Release()
	return b.NewRecordBatch()
}

// GetFlightInfoTables: HS2 GetTables, and GetColumns for the tables'
// Arrow schemas when asked.
func (s *Server) GetFlightInfoTables(_ context.Context, cmd flightsql.GetTables, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if cmd.GetIncludeSchema() {
		return s.metaInfo(desc, schema_ref.TablesWithIncludedSchema), nil
	}
	return s.metaInfo(desc, schema_ref.Tables), nil
}

func (s *Server) DoGetTables(ctx context.Context, cmd flightsql.GetTables) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	schema := schema_ref.Tables
	if cmd.GetIncludeSchema() {
		schema = schema_ref.TablesWithIncludedSchema
	}
	if c := cmd.GetCatalog(); c != nil && *c != "" {
		return stream(schema, emptyRecord(s, schema))
	}
	rows, err := s.metaRows(ctx, hs2.MetaRequest{Call: hs2.MetaTables, Schema: cmd.GetDBSchemaFilterPattern(),
		Table: cmd.GetTableNameFilterPattern(), TableTypes: cmd.GetTableTypes()})
	if err != nil {
		return nil, nil, err
	}
	var schemas map[[2]string]*arrow.Schema
	if cmd.GetIncludeSchema() {
		if schemas, err = s.tableSchemas(ctx, cmd); err != nil {
			return nil, nil, err
		}
	}
	b := array.NewRecordBuilder(s.alloc, schema)
	defer b.Release()
	for _, r := range rows {
		appendCatalog(b.Field(0).(*array.StringBuilder), r["TABLE_CAT"])
		b.Field(1).(*array.StringBuilder).Append(str(r["TABLE_SCHEM"]))
		b.Field(2).(*array.StringBuilder).Append(str(r["TABLE_NAME"]))
		b.Field(3).(*array.StringBuilder).Append(str(r["TABLE_TYPE"]))
		if schemas != nil {
			ts := schemas[[2]string{str(r["TABLE_SCHEM"]), str(r["TABLE_NAME"])}]
			if ts == nil {
				ts = emptySchema
			}
			b.Field(4).(*array.BinaryBuilder).Append(flight.SerializeSchema(ts, s.alloc))
		}
	}
	return stream(schema, b.NewRecordBatch())
}

// tableSchemas builds each matching table's Arrow schema from one HS2
// GetColumns call.
func (s *Server) tableSchemas(ctx context.Context, cmd flightsql.GetTables) (map[[2]string]*arrow.Schema, error) {
	rows, err := s.metaRows(ctx, hs2.MetaRequest{Call: hs2.MetaColumns, Schema: cmd.GetDBSchemaFilterPattern(), Table: cmd.GetTableNameFilterPattern()})
	if err != nil {
		return nil, err
	}
	fields := map[[2]string][]arrow.Field{}
	var order [][2]string
	for _, r := range rows {
		key := [2]string{str(r["TABLE_SCHEM"]), str(r["TABLE_NAME"])}
		if _, ok := fields[key]; !ok {
			order = append(order, key)
		}
		fields[key] = append(fields[key], columnFor(str(r["COLUMN_NAME"]), strings.ToLower(str(r["TYPE_NAME"]))).field)
	}
	out := make(map[[2]string]*arrow.Schema, len(order))
	for _, k := range order {
		out[k] = arrow.NewSchema(fields[k], nil)
	}
	return out, nil
}

// GetFlightInfoTableTypes: HS2 GetTableTypes.
func (s *Server) GetFlightInfoTableTypes(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metaInfo(desc, schema_ref.TableTypes), nil
}

func (s *Server) DoGetTableTypes(ctx context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	rows, err := s.metaRows(ctx, hs2.MetaRequest{Call: hs2.MetaTableTypes})
	if err != nil {
		return nil, nil, err
	}
	b := array.NewRecordBuilder(s.alloc, schema_ref.TableTypes)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(str(r["TABLE_TYPE"]))
	}
	return stream(schema_ref.TableTypes, b.NewRecordBatch())
}

// Prepared statements: hiveqd prepares nothing on HS2 (HiveServer2 has
// no server-side prepare); the handle carries the statement text, and
// executing it runs the statement. Parameters are not supported.

const preparedPrefix = "hiveqd-prepared:"

func (s *Server) CreatePreparedStatement(_ context.Context, req flightsql.ActionCreatePreparedStatementRequest) (flightsql.ActionCreatePreparedStatementResult, error) {
	if req.GetTransactionId() != nil {
		return flightsql.ActionCreatePreparedStatementResult{}, status.Error(codes.Unimplemented, "hiveqd has no transactions")
	}
	if hasParameters(req.GetQuery()) {
		return flightsql.ActionCreatePreparedStatementResult{}, errParameters
	}
	return flightsql.ActionCreatePreparedStatementResult{Handle: []byte(preparedPrefix + req.GetQuery())}, nil
}

var errParameters = status.Error(codes.Unimplemented, "hiveqd does not support parameters in prepared statements: HiveServer2 has no parameter binding; inline the values")

func (s *Server) ClosePreparedStatement(context.Context, flightsql.ActionClosePreparedStatementRequest) error {
	return nil
}

func preparedQuery(h []byte) (string, error) {
	q := string(h)
	if !strings.HasPrefix(q, preparedPrefix) {
		return "", status.Error(codes.InvalidArgument, "not a prepared statement handle of this server")
	}
	return q[len(preparedPrefix):], nil
}

func (s *Server) GetFlightInfoPreparedStatement(ctx context.Context, cmd flightsql.PreparedStatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	q, err := preparedQuery(cmd.GetPreparedStatementHandle())
	if err != nil {
		return nil, err
	}
	return s.statementInfo(ctx, q, desc)
}

func (s *Server) PollFlightInfoPreparedStatement(ctx context.Context, cmd flightsql.PreparedStatementQuery, desc *flight.FlightDescriptor) (*flight.PollInfo, error) {
	q, err := preparedQuery(cmd.GetPreparedStatementHandle())
	if err != nil {
		return nil, err
	}
	r, err := s.start(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.poll(ctx, r, desc)
}

func (s *Server) DoPutPreparedStatementQuery(context.Context, flightsql.PreparedStatementQuery, flight.MessageReader, flight.MetadataWriter) ([]byte, error) {
	return nil, errParameters
}

func (s *Server) DoPutPreparedStatementUpdate(ctx context.Context, cmd flightsql.PreparedStatementUpdate, rdr flight.MessageReader) (int64, error) {
	q, err := preparedQuery(cmd.GetPreparedStatementHandle())
	if err != nil {
		return 0, err
	}
	if rdr != nil && rdr.Next() && rdr.RecordBatch().NumRows() > 0 {
		return 0, errParameters
	}
	return s.update(ctx, q)
}

// DoPutCommandStatementUpdate runs a statement without a result set
// (DDL, INSERT); HS2 reports no row count: -1.
func (s *Server) DoPutCommandStatementUpdate(ctx context.Context, cmd flightsql.StatementUpdate) (int64, error) {
	if cmd.GetTransactionId() != nil {
		return 0, status.Error(codes.Unimplemented, "hiveqd has no transactions")
	}
	return s.update(ctx, cmd.GetQuery())
}

func (s *Server) update(ctx context.Context, stmt string) (int64, error) {
	err := s.cfg.Engine.Execute(ctx, query.Request{
		Statement: stmt, User: s.cfg.UserFromContext(ctx), Frontend: query.FrontendFlightSQL,
		Batch: query.BatchLimits{MaxRows: s.cfg.BatchRows, MaxBytes: s.cfg.BatchBytes},
	}, func(query.Event) error { return nil })
	if err != nil {
		return 0, toStatus(err)
	}
	return -1, nil
}

// hasParameters reports a '?' placeholder outside quotes and comments.
func hasParameters(q string) bool {
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return false
			}
			i += end + 3
		case c == '?':
			return true
		}
	}
	return false
}

package hs2

import (
	"context"

	"github.com/beltran/gohive/hiveserver"
)

// MetaCall is one of HS2's metadata calls, each of which starts an
// operation whose result set is read like a statement's.
type MetaCall int

const (
	MetaCatalogs   MetaCall = iota + 1 // GetCatalogs: TABLE_CAT
	MetaSchemas                        // GetSchemas: TABLE_SCHEM, TABLE_CATALOG
	MetaTables                         // GetTables: TABLE_CAT, TABLE_SCHEM, TABLE_NAME, TABLE_TYPE, REMARKS, ...
	MetaTableTypes                     // GetTableTypes: TABLE_TYPE
	MetaColumns                        // GetColumns: the JDBC DatabaseMetaData.getColumns columns
	MetaTypeInfo                       // GetTypeInfo
)

var metaCallNames = [...]string{"", "GetCatalogs", "GetSchemas", "GetTables", "GetTableTypes", "GetColumns", "GetTypeInfo"}

func (c MetaCall) String() string {
	if c > 0 && int(c) < len(metaCallNames) {
		return metaCallNames[c]
	}
	return "MetaCall(?)"
}

// MetaRequest is a metadata call and its arguments. Schema, Table and
// Column are JDBC patterns ('%' any string, '_' any character); nil leaves
// the argument unset, which HS2 takes as "all".
type MetaRequest struct {
	Call       MetaCall
	Catalog    *string
	Schema     *string
	Table      *string
	Column     *string
	TableTypes []string // GetTables; nil: every type
}

func pattern(s *string) *hiveserver.TPatternOrIdentifier {
	if s == nil {
		return nil
	}
	p := hiveserver.TPatternOrIdentifier(*s)
	return &p
}

func ident(s *string) *hiveserver.TIdentifier {
	if s == nil {
		return nil
	}
	p := hiveserver.TIdentifier(*s)
	return &p
}

// Metadata starts the metadata call m. HS2 runs these synchronously; the
// operation is read with Status, Schema and Fetch like a statement's.
func (s *Session) Metadata(ctx context.Context, m MetaRequest) (*Operation, error) {
	var h *hiveserver.TOperationHandle
	name := m.Call.String()
	err := s.call(ctx, name, true, func(ctx context.Context) (*hiveserver.TStatus, error) {
		var st *hiveserver.TStatus
		switch m.Call {
		case MetaCatalogs:
			resp, err := s.client.GetCatalogs(ctx, &hiveserver.TGetCatalogsReq{SessionHandle: s.handle})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		case MetaSchemas:
			resp, err := s.client.GetSchemas(ctx, &hiveserver.TGetSchemasReq{SessionHandle: s.handle,
				CatalogName: ident(m.Catalog), SchemaName: pattern(m.Schema)})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		case MetaTables:
			resp, err := s.client.GetTables(ctx, &hiveserver.TGetTablesReq{SessionHandle: s.handle,
				CatalogName: pattern(m.Catalog), SchemaName: pattern(m.Schema), TableName: pattern(m.Table), TableTypes: m.TableTypes})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		case MetaTableTypes:
			resp, err := s.client.GetTableTypes(ctx, &hiveserver.TGetTableTypesReq{SessionHandle: s.handle})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		case MetaColumns:
			resp, err := s.client.GetColumns(ctx, &hiveserver.TGetColumnsReq{SessionHandle: s.handle,
				CatalogName: ident(m.Catalog), SchemaName: pattern(m.Schema), TableName: pattern(m.Table), ColumnName: pattern(m.Column)})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		case MetaTypeInfo:
			resp, err := s.client.GetTypeInfo(ctx, &hiveserver.TGetTypeInfoReq{SessionHandle: s.handle})
			if err != nil {
				return nil, err
			}
			st, h = resp.Status, resp.OperationHandle
		default:
			return nil, &ServerError{Server: s.server, Call: name, Message: "unknown metadata call"}
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	if h == nil || h.OperationId == nil {
		return nil, &ServerError{Server: s.server, Call: name, Message: "no operation handle in reply"}
	}
	op := &Operation{s: s, h: h}
	op.hasRS.Store(true) // every metadata call has a result set
	return op, nil
}

// InfoType is a GetInfo question.
type InfoType = hiveserver.TGetInfoType

// GetInfo questions hiveqd asks.
const (
	InfoServerName = hiveserver.TGetInfoType_CLI_SERVER_NAME
	InfoDBMSName   = hiveserver.TGetInfoType_CLI_DBMS_NAME
	InfoDBMSVer    = hiveserver.TGetInfoType_CLI_DBMS_VER
)

// Info asks HS2 a GetInfo question whose answer is text.
func (s *Session) Info(ctx context.Context, t InfoType) (string, error) {
	var out string
	err := s.call(ctx, "GetInfo", true, func(ctx context.Context) (*hiveserver.TStatus, error) {
		resp, err := s.client.GetInfo(ctx, &hiveserver.TGetInfoReq{SessionHandle: s.handle, InfoType: t})
		if err != nil {
			return nil, err
		}
		if v := resp.InfoValue; v != nil && v.StringValue != nil {
			out = *v.StringValue
		}
		return resp.Status, nil
	})
	return out, err
}

package hs2sim

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

// maxProtocol is the newest TCLIService protocol Hive 3.1 speaks.
const maxProtocol = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10

// maxFetchSize is hive.server2.thrift.resultset.max.fetch.size: HS2 caps
// a FetchResults request's maxRows to it.
const maxFetchSize = 10000

// defaultFetchSize is hive.server2.thrift.resultset.default.fetch.size,
// which OpenSession reports to the client.
const defaultFetchSize = "1000"

// connInfo describes the transport a call arrived on.
type connInfo struct {
	id    uint64 // binary connection id; 0 for HTTP
	user  string // authenticated user (SASL PLAIN / HTTP), "" for NOSASL
	proxy string // HTTP: the doAs query parameter
}

type connKey struct{}

func connFrom(ctx context.Context) connInfo {
	ci, _ := ctx.Value(connKey{}).(connInfo)
	return ci
}

// cliService implements TCLIService on a Server.
type cliService struct{ s *Server }

var _ hiveserver.TCLIService = (*cliService)(nil)

// enter gates every call on the injected faults. A call that can't be
// answered (hung until the caller left, or the server crashed) is
// abandoned: the transport closes without a reply.
func (c *cliService) enter(ctx context.Context) error {
	if err := c.s.faults.gate(ctx, c.s.stop); err != nil || c.s.isCrashed() {
		return thrift.ErrAbandonRequest
	}
	return nil
}

func (c *cliService) OpenSession(ctx context.Context, req *hiveserver.TOpenSessionReq) (*hiveserver.TOpenSessionResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	if err := c.s.faults.openGate(ctx, c.s.stop); err != nil || c.s.isCrashed() {
		return nil, thrift.ErrAbandonRequest
	}
	resp := &hiveserver.TOpenSessionResp{ServerProtocolVersion: maxProtocol}
	if c.s.haMode() && !c.s.active.Load() {
		resp.Status = plainError("Cannot open sessions on an inactive HS2 instance; use service discovery to connect").status()
		return resp, nil
	}
	ci := connFrom(ctx)
	user := ci.user
	if user == "" && req.Username != nil && *req.Username != "" {
		user = *req.Username
	}
	if user == "" {
		user = "anonymous"
	}
	proto := min(req.ClientProtocol, maxProtocol)
	sess := &session{h: newHandle(), proto: proto, connID: ci.id, db: "default", conf: map[string]string{}, ops: map[[16]byte]*operation{}}
	for _, k := range sortedKeys(req.Configuration) {
		v := req.Configuration[k]
		switch {
		case strings.HasPrefix(k, "use:"):
			if !c.s.eng.validDB(v) {
				resp.Status = plainError("Failed to open new session: Database %s does not exist", v).status()
				return resp, nil
			}
			sess.db = strings.ToLower(v)
		case strings.HasPrefix(k, "set:hiveconf:"):
			sess.conf[k[len("set:hiveconf:"):]] = v
		case strings.HasPrefix(k, "set:hivevar:"):
			// Kept as hivevar:NAME, where SET hivevar:NAME=v puts them too.
			sess.conf["hivevar:"+k[len("set:hivevar:"):]] = v
		case strings.HasPrefix(k, "set:system:"):
			// system properties don't change behaviour here
		case strings.HasPrefix(k, "set:"):
			sess.conf[k[len("set:"):]] = v
		default:
			sess.conf[k] = v
		}
	}
	// hive.server2.proxy.user (or HTTP's doAs): with user substitution
	// allowed (HS2's default) the session runs as the proxy user; with
	// Kerberos the real user needs proxy-user rights.
	proxy := ci.proxy
	if p, ok := sess.conf["hive.server2.proxy.user"]; ok {
		proxy = p
	}
	if proxy != "" {
		if !c.s.mayImpersonate(user, proxy) {
			resp.Status = (&hiveError{sqlState: "08S01", msg: fmt.Sprintf("Failed to validate proxy privilege of %s for %s", user, proxy),
				frames: []string{"org.apache.hive.service.auth.HiveAuthFactory:verifyProxyAccess:HiveAuthFactory.java:402"},
				cause:  "org.apache.hadoop.security.authorize.AuthorizationException:User: " + user + " is not allowed to impersonate " + proxy}).status()
			return resp, nil
		}
		user = proxy
	}
	sess.user = user
	if !c.s.addSession(sess) {
		return nil, thrift.ErrAbandonRequest
	}
	resp.Status = okStatus()
	resp.ServerProtocolVersion = proto
	resp.SessionHandle = &hiveserver.TSessionHandle{SessionId: sess.h.thrift()}
	resp.Configuration = map[string]string{"hive.server2.thrift.resultset.default.fetch.size": defaultFetchSize}
	return resp, nil
}

func (c *cliService) CloseSession(ctx context.Context, req *hiveserver.TCloseSessionReq) (*hiveserver.TCloseSessionResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	sess, herr := c.s.lookupSession(req.SessionHandle)
	if herr != nil {
		herr.msg = strings.Replace(herr.msg, "Invalid SessionHandle: ", "Session does not exist: ", 1)
		return &hiveserver.TCloseSessionResp{Status: herr.status()}, nil
	}
	c.s.closeSession(sess)
	return &hiveserver.TCloseSessionResp{Status: okStatus()}, nil
}

func (c *cliService) GetInfo(ctx context.Context, req *hiveserver.TGetInfoReq) (*hiveserver.TGetInfoResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	// infoValue is a required union: it must carry a value even on error.
	empty := ""
	resp := &hiveserver.TGetInfoResp{InfoValue: &hiveserver.TGetInfoValue{StringValue: &empty}}
	if _, herr := c.s.lookupSession(req.SessionHandle); herr != nil {
		resp.Status = herr.status()
		return resp, nil
	}
	str := func(s string) *hiveserver.TGetInfoValue { return &hiveserver.TGetInfoValue{StringValue: &s} }
	length := func(n int64) *hiveserver.TGetInfoValue { return &hiveserver.TGetInfoValue{LenValue: &n} }
	switch req.InfoType {
	case hiveserver.TGetInfoType_CLI_SERVER_NAME:
		resp.InfoValue = str("Hive")
	case hiveserver.TGetInfoType_CLI_DBMS_NAME:
		resp.InfoValue = str("Apache Hive")
	case hiveserver.TGetInfoType_CLI_DBMS_VER:
		resp.InfoValue = str(c.s.cfg.Version)
	case hiveserver.TGetInfoType_CLI_MAX_COLUMN_NAME_LEN, hiveserver.TGetInfoType_CLI_MAX_SCHEMA_NAME_LEN,
		hiveserver.TGetInfoType_CLI_MAX_TABLE_NAME_LEN:
		resp.InfoValue = length(128)
	default:
		resp.Status = plainError("Unrecognized GetInfoType value: %s", req.InfoType).status()
		return resp, nil
	}
	resp.Status = okStatus()
	return resp, nil
}

func (c *cliService) ExecuteStatement(ctx context.Context, req *hiveserver.TExecuteStatementReq) (*hiveserver.TExecuteStatementResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	sess, herr := c.s.lookupSession(req.SessionHandle)
	if herr != nil {
		return &hiveserver.TExecuteStatementResp{Status: herr.status()}, nil
	}
	view := sess.view()
	for k, v := range req.ConfOverlay {
		view.conf[k] = v
	}
	p, herr := c.s.eng.compile(ctx, view, substitute(view.conf, req.Statement))
	if herr != nil {
		return &hiveserver.TExecuteStatementResp{Status: herr.status()}, nil
	}
	op := c.s.newOp(sess, hiveserver.TOperationType_EXECUTE_STATEMENT, p)
	if op == nil {
		return &hiveserver.TExecuteStatementResp{Status: sessionGone(sess).status()}, nil
	}
	op.async = req.RunAsync && !p.sync
	op.timeout = time.Duration(req.QueryTimeout) * time.Second
	op.execDelay = time.Duration(confInt(view.conf, "hs2sim.exec_delay_ms")) * time.Millisecond
	op.rate = confInt(view.conf, "hs2sim.rows_per_second")
	op.fetchDelay = time.Duration(confInt(view.conf, "hs2sim.fetch_delay_ms")) * time.Millisecond
	if op.async {
		c.s.startOp(op)
	} else {
		c.s.runOp(op)
		// A foreground statement's failure is the call's failure; HS2
		// closes the operation.
		if state, err := op.snapshot(); state == hiveserver.TOperationState_ERROR_STATE {
			c.s.closeOp(op)
			return &hiveserver.TExecuteStatementResp{Status: err.status()}, nil
		}
	}
	return &hiveserver.TExecuteStatementResp{Status: okStatus(), OperationHandle: op.thrift()}, nil
}

func sessionGone(sess *session) *hiveError {
	return plainError("Invalid SessionHandle: %s", sess.handleString())
}

func (o *operation) thrift() *hiveserver.TOperationHandle {
	return &hiveserver.TOperationHandle{OperationId: o.h.thrift(), OperationType: o.typ, HasResultSet: o.plan.hasResult}
}

func (c *cliService) GetOperationStatus(ctx context.Context, req *hiveserver.TGetOperationStatusReq) (*hiveserver.TGetOperationStatusResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		return &hiveserver.TGetOperationStatusResp{Status: herr.status()}, nil
	}
	// HS2's long poll: an asynchronous operation's status call waits up to
	// hive.server2.long.polling.timeout for the operation to end.
	if state, _ := op.snapshot(); !terminal(state) && op.async {
		t := time.NewTimer(c.s.cfg.LongPoll)
		select {
		case <-op.done:
		case <-t.C:
		case <-ctx.Done():
		case <-c.s.stop:
		}
		t.Stop()
	}
	op.mu.Lock()
	state, oerr, started, completed := op.state, op.err, op.started, op.completed
	op.mu.Unlock()
	hasRS := op.plan.hasResult
	resp := &hiveserver.TGetOperationStatusResp{
		Status:           okStatus(),
		OperationState:   &state,
		OperationStarted: &started,
		HasResultSet:     &hasRS,
	}
	if completed > 0 {
		resp.OperationCompleted = &completed
	}
	if op.typ == hiveserver.TOperationType_EXECUTE_STATEMENT {
		ts := "[]"
		resp.TaskStatus = &ts
	}
	if oerr != nil {
		msg, code := oerr.msg, oerr.code
		resp.ErrorMessage, resp.ErrorCode = &msg, &code
		if oerr.sqlState != "" {
			ss := oerr.sqlState
			resp.SqlState = &ss
		}
	}
	if req.GetProgressUpdate != nil && *req.GetProgressUpdate {
		pct := 0.0
		if state == hiveserver.TOperationState_FINISHED_STATE {
			pct = 1
		}
		resp.ProgressUpdateResponse = &hiveserver.TProgressUpdateResp{
			HeaderNames: []string{}, Rows: [][]string{}, ProgressedPercentage: pct,
			Status: hiveserver.TJobExecutionStatus_NOT_AVAILABLE, StartTime: started,
		}
	}
	return resp, nil
}

// stateName is Hive's OperationState name for a Thrift state.
func stateName(s hiveserver.TOperationState) string {
	return strings.TrimSuffix(s.String(), "_STATE")
}

func (c *cliService) CancelOperation(ctx context.Context, req *hiveserver.TCancelOperationReq) (*hiveserver.TCancelOperationResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		return &hiveserver.TCancelOperationResp{Status: herr.status()}, nil
	}
	if !op.transition(hiveserver.TOperationState_CANCELED_STATE, nil) {
		state, _ := op.snapshot()
		return &hiveserver.TCancelOperationResp{Status: plainError("Illegal Operation state transition from %s to CANCELED", stateName(state)).status()}, nil
	}
	op.cancelRun()
	c.s.operationsCancelled.Add(1)
	return &hiveserver.TCancelOperationResp{Status: okStatus()}, nil
}

func (c *cliService) CloseOperation(ctx context.Context, req *hiveserver.TCloseOperationReq) (*hiveserver.TCloseOperationResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		return &hiveserver.TCloseOperationResp{Status: herr.status()}, nil
	}
	c.s.closeOp(op)
	return &hiveserver.TCloseOperationResp{Status: okStatus()}, nil
}

func (c *cliService) GetResultSetMetadata(ctx context.Context, req *hiveserver.TGetResultSetMetadataReq) (*hiveserver.TGetResultSetMetadataResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		return &hiveserver.TGetResultSetMetadataResp{Status: herr.status()}, nil
	}
	// The schema is known once compiled, so HS2 serves it while RUNNING.
	state, _ := op.snapshot()
	if state != hiveserver.TOperationState_RUNNING_STATE && state != hiveserver.TOperationState_FINISHED_STATE {
		return &hiveserver.TGetResultSetMetadataResp{Status: plainError("Expected states: [RUNNING, FINISHED], but found %s", stateName(state)).status()}, nil
	}
	return &hiveserver.TGetResultSetMetadataResp{Status: okStatus(), Schema: tableSchema(op.plan.cols)}, nil
}

func (c *cliService) FetchResults(ctx context.Context, req *hiveserver.TFetchResultsReq) (*hiveserver.TFetchResultsResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		return &hiveserver.TFetchResultsResp{Status: herr.status()}, nil
	}
	return c.s.fetch(ctx, op, req)
}

func (c *cliService) GetTypeInfo(ctx context.Context, req *hiveserver.TGetTypeInfoReq) (*hiveserver.TGetTypeInfoResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_TYPE_INFO, func(sessionView) *plan { return typeInfoPlan() })
	return &hiveserver.TGetTypeInfoResp{Status: st, OperationHandle: h}, nil
}

func (c *cliService) GetCatalogs(ctx context.Context, req *hiveserver.TGetCatalogsReq) (*hiveserver.TGetCatalogsResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_CATALOGS, func(sessionView) *plan {
		return rowsPlan([]column{{name: "TABLE_CAT", typ: tString, comment: "Catalog name. NULL if not applicable."}}, nil)
	})
	return &hiveserver.TGetCatalogsResp{Status: st, OperationHandle: h}, nil
}

func (c *cliService) GetSchemas(ctx context.Context, req *hiveserver.TGetSchemasReq) (*hiveserver.TGetSchemasResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_SCHEMAS, func(sessionView) *plan {
		return c.s.eng.schemasPlan(patternOf(req.SchemaName))
	})
	return &hiveserver.TGetSchemasResp{Status: st, OperationHandle: h}, nil
}

func (c *cliService) GetTables(ctx context.Context, req *hiveserver.TGetTablesReq) (*hiveserver.TGetTablesResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_TABLES, func(sessionView) *plan {
		return c.s.eng.tablesPlan(patternOf(req.SchemaName), patternOf(req.TableName), req.TableTypes)
	})
	return &hiveserver.TGetTablesResp{Status: st, OperationHandle: h}, nil
}

func (c *cliService) GetTableTypes(ctx context.Context, req *hiveserver.TGetTableTypesReq) (*hiveserver.TGetTableTypesResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_TABLE_TYPES, func(sessionView) *plan {
		// hive.server2.table.type.mapping=CLASSIC, HS2's default
		rows := [][]any{{"TABLE"}, {"VIEW"}, {"MATERIALIZED_VIEW"}}
		return rowsPlan([]column{{name: "TABLE_TYPE", typ: tString, comment: "Table type name."}}, rows)
	})
	return &hiveserver.TGetTableTypesResp{Status: st, OperationHandle: h}, nil
}

func (c *cliService) GetColumns(ctx context.Context, req *hiveserver.TGetColumnsReq) (*hiveserver.TGetColumnsResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	st, h := c.s.metaOp(req.SessionHandle, hiveserver.TOperationType_GET_COLUMNS, func(sessionView) *plan {
		return c.s.eng.columnsPlan(patternOf(req.SchemaName), patternOf(req.TableName), patternOf(req.ColumnName))
	})
	return &hiveserver.TGetColumnsResp{Status: st, OperationHandle: h}, nil
}

func notSupported(call string) *hiveserver.TStatus {
	return plainError("hs2sim: %s is not supported", call).status()
}

func (c *cliService) GetFunctions(ctx context.Context, req *hiveserver.TGetFunctionsReq) (*hiveserver.TGetFunctionsResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TGetFunctionsResp{Status: notSupported("GetFunctions")}, nil
}

func (c *cliService) GetPrimaryKeys(ctx context.Context, req *hiveserver.TGetPrimaryKeysReq) (*hiveserver.TGetPrimaryKeysResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TGetPrimaryKeysResp{Status: notSupported("GetPrimaryKeys")}, nil
}

func (c *cliService) GetCrossReference(ctx context.Context, req *hiveserver.TGetCrossReferenceReq) (*hiveserver.TGetCrossReferenceResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TGetCrossReferenceResp{Status: notSupported("GetCrossReference")}, nil
}

// tokenStatus is HS2's answer to delegation-token calls without Kerberos.
func tokenStatus() *hiveserver.TStatus {
	return plainError("Delegation token only supported over remote client with kerberos authentication").status()
}

func (c *cliService) GetDelegationToken(ctx context.Context, req *hiveserver.TGetDelegationTokenReq) (*hiveserver.TGetDelegationTokenResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TGetDelegationTokenResp{Status: tokenStatus()}, nil
}

func (c *cliService) CancelDelegationToken(ctx context.Context, req *hiveserver.TCancelDelegationTokenReq) (*hiveserver.TCancelDelegationTokenResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TCancelDelegationTokenResp{Status: tokenStatus()}, nil
}

func (c *cliService) RenewDelegationToken(ctx context.Context, req *hiveserver.TRenewDelegationTokenReq) (*hiveserver.TRenewDelegationTokenResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return &hiveserver.TRenewDelegationTokenResp{Status: tokenStatus()}, nil
}

func (c *cliService) GetQueryId(ctx context.Context, req *hiveserver.TGetQueryIdReq) (*hiveserver.TGetQueryIdResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	op, herr := c.s.lookupOp(req.OperationHandle)
	if herr != nil {
		// TGetQueryIdResp has no status: HS2 throws, which reaches the
		// client as a TApplicationException.
		return nil, herr
	}
	return &hiveserver.TGetQueryIdResp{QueryId: op.queryID}, nil
}

func (c *cliService) SetClientInfo(ctx context.Context, req *hiveserver.TSetClientInfoReq) (*hiveserver.TSetClientInfoResp, error) {
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	if _, herr := c.s.lookupSession(req.SessionHandle); herr != nil {
		return &hiveserver.TSetClientInfoResp{Status: herr.status()}, nil
	}
	return &hiveserver.TSetClientInfoResp{Status: okStatus()}, nil
}

func patternOf(p *hiveserver.TPatternOrIdentifier) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// mayImpersonate is HiveAuthFactory.verifyProxyAccess: with Kerberos, the
// real user must be a configured proxy user (hadoop.proxyuser.<user>.*);
// a user may always "impersonate" itself. Other modes substitute freely.
func (s *Server) mayImpersonate(real, proxy string) bool {
	if s.cfg.Auth != "kerberos" || strings.EqualFold(real, proxy) {
		return true
	}
	for _, u := range s.cfg.ProxyUsers {
		if u == "*" || u == real {
			return true
		}
	}
	return false
}

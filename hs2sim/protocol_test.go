package hs2sim

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/beltran/gohive/hiveserver"
)

const (
	v1  = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V1
	v6  = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V6
	v10 = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V10
	v11 = hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V11
)

func TestOpenSessionNegotiatesProtocol(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	for _, tc := range []struct{ client, want hiveserver.TProtocolVersion }{{v6, v6}, {v10, v10}, {v11, v10}, {v1, v1}} {
		resp, err := c.OpenSession(ctxT(t), &hiveserver.TOpenSessionReq{ClientProtocol: tc.client})
		if err != nil {
			t.Fatal(err)
		}
		ok(t, resp.Status)
		if resp.ServerProtocolVersion != tc.want {
			t.Errorf("client %v: server protocol %v, want %v", tc.client, resp.ServerProtocolVersion, tc.want)
		}
		if got := resp.Configuration["hive.server2.thrift.resultset.default.fetch.size"]; got != "1000" {
			t.Errorf("fetch size conf = %q", got)
		}
		c.closeSession(resp.SessionHandle)
	}
}

func TestOpenSessionConfiguration(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{user: "alice"})
	h := c.open(map[string]string{"use:database": "sales", "set:hiveconf:my.key": "v1", "hive.server2.proxy.user": "carol"})
	defer c.closeSession(h)
	got := c.query(h, "SELECT current_database(), current_user()")
	if want := [][]string{{"sales", "carol"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
	if got := c.query(h, "SET my.key"); !reflect.DeepEqual(got, [][]string{{"my.key=v1"}}) {
		t.Errorf("SET my.key: %v", got)
	}
	// unqualified names resolve in the session's database
	if got := c.query(h, "SELECT count(*) FROM orders"); !reflect.DeepEqual(got, [][]string{{"8"}}) {
		t.Errorf("count: %v", got)
	}

	h2 := c.open(nil)
	defer c.closeSession(h2)
	if got := c.query(h2, "SELECT current_user()"); got[0][0] != "alice" {
		t.Errorf("user %v, want the SASL user alice", got)
	}

	resp, err := c.OpenSession(ctxT(t), &hiveserver.TOpenSessionReq{ClientProtocol: v10, Configuration: map[string]string{"use:database": "nodb"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || resp.Status.GetErrorMessage() != "Failed to open new session: Database nodb does not exist" {
		t.Errorf("use:nodb: %v", resp.Status)
	}
}

func TestCompileErrors(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	for _, tc := range []struct {
		stmt, state string
		code        int32
		msg         string
	}{
		{"SELEC 1", "42000", 40000, "Error while compiling statement: FAILED: ParseException line 1:0 cannot recognize input near 'SELEC' '1' '<EOF>'"},
		{"SELECT * FORM all_types", "42000", 40000, "Error while compiling statement: FAILED: ParseException line 1:9 cannot recognize input near 'FORM' 'all_types' '<EOF>'"},
		{"SELECT * FROM x", "42S02", 10001, "Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 1:14 Table not found 'x'"},
		{"SELECT * FROM nodb.t", "42S02", 10001, "Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 1:14 Table not found 't'"},
		{"SELECT a.id\nFROM all_types a JOIN sales.nope b ON a.id = b.id", "42S02", 10001, "Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 2:22 Table not found 'nope'"},
		{"USE nodb", "42000", 10072, "Error while compiling statement: FAILED: SemanticException [Error 10072]: Database does not exist: nodb"},
		{"SHOW TABLES IN nodb", "42000", 10072, "Error while compiling statement: FAILED: SemanticException [Error 10072]: Database does not exist: nodb"},
		{"SELECT nocol FROM employees", "42000", 10004, "Error while compiling statement: FAILED: SemanticException [Error 10004]: Line 1:7 Invalid table alias or column reference 'nocol': (possible column names are: id, name, dept, salary, hired, active)"},
		{"SELECT nofn(1)", "42000", 10011, "Error while compiling statement: FAILED: SemanticException [Error 10011]: Line 1:7 Invalid function 'nofn'"},
		{"SELECT 1;", "42000", 40000, "Error while compiling statement: FAILED: ParseException line 1:8 extraneous input ';' expecting EOF near '<EOF>'"},
		{"DROP TABLE employees", "42000", 40000, "Error while compiling statement: FAILED: ParseException line 1:0 cannot recognize input near 'DROP' 'TABLE' 'employees'"},
		{"", "42000", 40000, "Error while compiling statement: FAILED: ParseException line 1:0 cannot recognize input near '<EOF>' '<EOF>' '<EOF>'"},
		{"DESCRIBE nope", "42S02", 10001, "Error while compiling statement: FAILED: SemanticException [Error 10001]: Table not found nope"},
	} {
		resp := c.exec(h, tc.stmt, true)
		st := resp.Status
		if st.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || st.GetSqlState() != tc.state || st.GetErrorCode() != tc.code || st.GetErrorMessage() != tc.msg {
			t.Errorf("%q:\n got  %s %d %q\n want %s %d %q", tc.stmt, st.GetSqlState(), st.GetErrorCode(), st.GetErrorMessage(), tc.state, tc.code, tc.msg)
		}
		if resp.OperationHandle != nil {
			t.Errorf("%q: an operation handle with a compile error", tc.stmt)
		}
		if len(st.InfoMessages) == 0 || !strings.HasPrefix(st.InfoMessages[0], "*org.apache.hive.service.cli.HiveSQLException:"+tc.msg) {
			t.Errorf("%q: infoMessages %v", tc.stmt, st.InfoMessages)
		}
	}
	if st := s.Stats(); st.OpenOperations != 0 {
		t.Errorf("compile errors left operations: %+v", st)
	}
}

func TestRuntimeErrors(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	const msg = "Error while processing statement: FAILED: Execution Error, return code 2 from org.apache.hadoop.hive.ql.exec.mr.MapRedTask"

	s.FailQueries(true)
	op, st := c.run(h, "SELECT * FROM employees")
	if *st.OperationState != hiveserver.TOperationState_ERROR_STATE || st.GetSqlState() != "08S01" || st.GetErrorCode() != 2 || st.GetErrorMessage() != msg {
		t.Errorf("status %v %q %d %q", st.OperationState, st.GetSqlState(), st.GetErrorCode(), st.GetErrorMessage())
	}
	f := c.fetch(op, 10, hiveserver.TFetchOrientation_FETCH_NEXT)
	if f.Status.GetErrorMessage() != "Expected state FINISHED, but found ERROR" {
		t.Errorf("fetch after error: %v", f.Status)
	}
	c.closeOp(op)
	// In the foreground the failure is ExecuteStatement's.
	resp := c.exec(h, "SELECT 1", false)
	if resp.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || resp.Status.GetSqlState() != "08S01" || resp.Status.GetErrorMessage() != msg {
		t.Errorf("sync: %v", resp.Status)
	}
	// Metastore commands still work.
	if got := c.query(h, "SHOW DATABASES"); len(got) != 3 {
		t.Errorf("show databases: %v", got)
	}
	s.FailQueries(false)
	if got := c.query(h, "SELECT 1"); !reflect.DeepEqual(got, [][]string{{"1"}}) {
		t.Errorf("after FailQueries(false): %v", got)
	}
	// assert_true is Hive's way to fail at run time.
	_, st = c.run(h, "SELECT assert_true(id < 3) FROM employees")
	if *st.OperationState != hiveserver.TOperationState_ERROR_STATE || st.GetSqlState() != "08S01" || !strings.Contains(st.GetErrorMessage(), "ASSERT_TRUE(): assertion failed") {
		t.Errorf("assert_true: %v %q", st.OperationState, st.GetErrorMessage())
	}
}

func TestResultSetMetadata(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	type col struct {
		name string
		typ  hiveserver.TTypeId
		qual map[string]int32
	}
	meta := func(stmt string) []col {
		t.Helper()
		op, st := c.run(h, stmt)
		defer c.closeOp(op)
		if !op.HasResultSet || !st.GetHasResultSet() {
			t.Fatalf("%s: no result set", stmt)
		}
		resp, err := c.GetResultSetMetadata(ctxT(t), &hiveserver.TGetResultSetMetadataReq{OperationHandle: op})
		if err != nil {
			t.Fatal(err)
		}
		ok(t, resp.Status)
		var out []col
		for i, d := range resp.Schema.Columns {
			if d.Position != int32(i+1) {
				t.Errorf("%s: column %d position %d", stmt, i, d.Position)
			}
			if len(d.TypeDesc.Types) != 1 || d.TypeDesc.Types[0].PrimitiveEntry == nil {
				t.Fatalf("%s: type desc %v", stmt, d.TypeDesc)
			}
			pe := d.TypeDesc.Types[0].PrimitiveEntry
			cc := col{name: d.ColumnName, typ: pe.Type}
			if pe.TypeQualifiers != nil {
				cc.qual = map[string]int32{}
				for k, v := range pe.TypeQualifiers.Qualifiers {
					cc.qual[k] = v.GetI32Value()
				}
			}
			out = append(out, cc)
		}
		return out
	}
	got := meta("SELECT * FROM all_types")
	want := []col{
		{"all_types.id", hiveserver.TTypeId_INT_TYPE, nil},
		{"all_types.c_boolean", hiveserver.TTypeId_BOOLEAN_TYPE, nil},
		{"all_types.c_tinyint", hiveserver.TTypeId_TINYINT_TYPE, nil},
		{"all_types.c_smallint", hiveserver.TTypeId_SMALLINT_TYPE, nil},
		{"all_types.c_int", hiveserver.TTypeId_INT_TYPE, nil},
		{"all_types.c_bigint", hiveserver.TTypeId_BIGINT_TYPE, nil},
		{"all_types.c_float", hiveserver.TTypeId_FLOAT_TYPE, nil},
		{"all_types.c_double", hiveserver.TTypeId_DOUBLE_TYPE, nil},
		{"all_types.c_decimal", hiveserver.TTypeId_DECIMAL_TYPE, map[string]int32{"precision": 10, "scale": 2}},
		{"all_types.c_string", hiveserver.TTypeId_STRING_TYPE, nil},
		{"all_types.c_varchar", hiveserver.TTypeId_VARCHAR_TYPE, map[string]int32{"characterMaximumLength": 20}},
		{"all_types.c_char", hiveserver.TTypeId_CHAR_TYPE, map[string]int32{"characterMaximumLength": 5}},
		{"all_types.c_date", hiveserver.TTypeId_DATE_TYPE, nil},
		{"all_types.c_timestamp", hiveserver.TTypeId_TIMESTAMP_TYPE, nil},
		{"all_types.c_binary", hiveserver.TTypeId_BINARY_TYPE, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SELECT *:\n got  %v\n want %v", got, want)
	}
	got = meta("SELECT e.name, e.salary AS pay, count(*), 1, 'x', 2.5, upper(name) AS Shout FROM default.employees e GROUP BY e.name, e.salary")
	want = []col{
		{"name", hiveserver.TTypeId_STRING_TYPE, nil},
		{"pay", hiveserver.TTypeId_DECIMAL_TYPE, map[string]int32{"precision": 10, "scale": 2}},
		{"_c2", hiveserver.TTypeId_BIGINT_TYPE, nil},
		{"_c3", hiveserver.TTypeId_INT_TYPE, nil},
		{"_c4", hiveserver.TTypeId_STRING_TYPE, nil},
		{"_c5", hiveserver.TTypeId_DOUBLE_TYPE, nil},
		{"shout", hiveserver.TTypeId_STRING_TYPE, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("expressions:\n got  %v\n want %v", got, want)
	}
	got = meta("SELECT * FROM sales.orders o JOIN sales.customers c ON o.customer_id = c.customer_id")
	if len(got) != 13 || got[0].name != "o.order_id" || got[8].name != "c.customer_id" || got[12].name != "c.signup" {
		t.Errorf("join *: %v", got)
	}
	got = meta("SHOW DATABASES")
	if !reflect.DeepEqual(got, []col{{"database_name", hiveserver.TTypeId_STRING_TYPE, nil}}) {
		t.Errorf("show databases: %v", got)
	}
	got = meta("DESCRIBE sales.orders")
	if len(got) != 3 || got[0].name != "col_name" || got[1].name != "data_type" || got[2].name != "comment" {
		t.Errorf("describe: %v", got)
	}
}

// TestColumnEncoding checks each Hive type travels in its TColumn variant
// with HS2's NULL bitmap and zero values in NULL slots.
func TestColumnEncoding(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil, v6)
	defer c.closeSession(h)
	op, _ := c.run(h, "SELECT * FROM all_types ORDER BY id")
	defer c.closeOp(op)
	resp := c.fetch(op, 100, hiveserver.TFetchOrientation_FETCH_NEXT)
	ok(t, resp.Status)
	if resp.HasMoreRows == nil || *resp.HasMoreRows {
		t.Errorf("hasMoreRows = %v, HS2 sends false", resp.HasMoreRows)
	}
	cols := resp.Results.Columns
	if len(cols) != 15 || len(resp.Results.Rows) != 0 {
		t.Fatalf("%d columns, %d rows", len(cols), len(resp.Results.Rows))
	}
	nulls := []byte{0x04} // row 3 (index 2) is the NULL row
	check := func(i int, name string, gotNulls []byte, vals, want any) {
		t.Helper()
		if !reflect.DeepEqual(gotNulls, nulls) {
			t.Errorf("%s: nulls %x", name, gotNulls)
		}
		if !reflect.DeepEqual(vals, want) {
			t.Errorf("%s: %#v, want %#v", name, vals, want)
		}
	}
	if cols[0].I32Val == nil || !reflect.DeepEqual(cols[0].I32Val.Values, []int32{1, 2, 3, 4}) || len(cols[0].I32Val.Nulls) != 0 {
		t.Errorf("id: %v", cols[0])
	}
	check(1, "boolean", cols[1].BoolVal.Nulls, cols[1].BoolVal.Values, []bool{true, false, false, true})
	check(2, "tinyint", cols[2].ByteVal.Nulls, cols[2].ByteVal.Values, []int8{1, -128, 0, 127})
	check(3, "smallint", cols[3].I16Val.Nulls, cols[3].I16Val.Values, []int16{100, -32768, 0, 32767})
	check(4, "int", cols[4].I32Val.Nulls, cols[4].I32Val.Values, []int32{1000, -2147483648, 0, 2147483647})
	check(5, "bigint", cols[5].I64Val.Nulls, cols[5].I64Val.Values, []int64{10000000000, -9223372036854775808, 0, 9223372036854775807})
	check(6, "float", cols[6].DoubleVal.Nulls, cols[6].DoubleVal.Values, []float64{1.5, -0.5, 0, 3.25})
	check(7, "double", cols[7].DoubleVal.Nulls, cols[7].DoubleVal.Values, []float64{2.25, -1e10, 0, 0.001})
	check(8, "decimal", cols[8].StringVal.Nulls, cols[8].StringVal.Values, []string{"12.50", "-99999999.99", "", "0.01"})
	check(9, "string", cols[9].StringVal.Nulls, cols[9].StringVal.Values, []string{"hello", "", "", "unicode ✓ é"})
	check(10, "varchar", cols[10].StringVal.Nulls, cols[10].StringVal.Values, []string{"varchar one", "v2", "", "x"})
	check(11, "char", cols[11].StringVal.Nulls, cols[11].StringVal.Values, []string{"ab   ", "abcde", "", "z    "})
	check(12, "date", cols[12].StringVal.Nulls, cols[12].StringVal.Values, []string{"2024-01-15", "1970-01-01", "", "2099-12-31"})
	check(13, "timestamp", cols[13].StringVal.Nulls, cols[13].StringVal.Values, []string{"2024-01-15 10:30:00", "1970-01-01 00:00:00.123", "", "2099-12-31 23:59:59.999999"})
	check(14, "binary", cols[14].BinaryVal.Nulls, cols[14].BinaryVal.Values, [][]byte{{1, 2, 0xff}, {}, {}, []byte("bin")})

	// The end of the data: every column present, no rows.
	resp = c.fetch(op, 100, hiveserver.TFetchOrientation_FETCH_NEXT)
	ok(t, resp.Status)
	if len(resp.Results.Columns) != 15 || resp.Results.Columns[14].BinaryVal == nil || len(resp.Results.Columns[14].BinaryVal.Values) != 0 {
		t.Errorf("empty fetch: %v", resp.Results.Columns)
	}
}

func TestRowBasedBelowV6(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil, hiveserver.TProtocolVersion_HIVE_CLI_SERVICE_PROTOCOL_V5)
	defer c.closeSession(h)
	op, _ := c.run(h, "SELECT id, name, dept FROM employees WHERE id IN (3, 4) ORDER BY id")
	defer c.closeOp(op)
	resp := c.fetch(op, 10, hiveserver.TFetchOrientation_FETCH_NEXT)
	ok(t, resp.Status)
	if resp.Results.Columns != nil || len(resp.Results.Rows) != 2 {
		t.Fatalf("want 2 rows, row-based: %v", resp.Results)
	}
	r := resp.Results.Rows[1].ColVals
	if r[0].I32Val.GetValue() != 4 || r[1].StringVal.GetValue() != "Dan" || r[2].StringVal.IsSetValue() {
		t.Errorf("row: %v", r)
	}
}

func TestFetchSemantics(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	op, _ := c.run(h, "SELECT id FROM employees ORDER BY id")
	defer c.closeOp(op)
	ids := func(r *hiveserver.TFetchResultsResp) []int32 {
		ok(t, r.Status)
		return r.Results.Columns[0].I32Val.Values
	}
	if got := ids(c.fetch(op, 4, hiveserver.TFetchOrientation_FETCH_NEXT)); !reflect.DeepEqual(got, []int32{1, 2, 3, 4}) {
		t.Errorf("first 4: %v", got)
	}
	if got := ids(c.fetch(op, 4, hiveserver.TFetchOrientation_FETCH_NEXT)); !reflect.DeepEqual(got, []int32{5, 6}) {
		t.Errorf("next: %v", got)
	}
	if got := ids(c.fetch(op, 4, hiveserver.TFetchOrientation_FETCH_NEXT)); len(got) != 0 {
		t.Errorf("past the end: %v", got)
	}
	if got := ids(c.fetch(op, 2, hiveserver.TFetchOrientation_FETCH_FIRST)); !reflect.DeepEqual(got, []int32{1, 2}) {
		t.Errorf("FETCH_FIRST: %v", got)
	}
	r := c.fetch(op, 2, hiveserver.TFetchOrientation_FETCH_PRIOR)
	if r.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || r.Status.GetSqlState() != "HY106" {
		t.Errorf("FETCH_PRIOR: %v", r.Status)
	}
	logs, err := c.FetchResults(ctxT(t), &hiveserver.TFetchResultsReq{OperationHandle: op, Orientation: hiveserver.TFetchOrientation_FETCH_NEXT, MaxRows: 100, FetchType: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok(t, logs.Status)
	if len(logs.Results.Columns) != 1 || logs.Results.Columns[0].StringVal == nil || len(logs.Results.Columns[0].StringVal.Values) != 0 {
		t.Errorf("logs: %v", logs.Results)
	}
	// maxRows is capped at hive.server2.thrift.resultset.max.fetch.size.
	op2, _ := c.run(h, "SELECT * FROM synth.rows_20000")
	defer c.closeOp(op2)
	if n := len(c.fetch(op2, 50000, hiveserver.TFetchOrientation_FETCH_NEXT).Results.Columns[0].I64Val.Values); n != 10000 {
		t.Errorf("maxRows 50000 gave %d rows", n)
	}
}

func TestStatementsWithoutResultSet(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	for _, stmt := range []string{"USE sales", "SET hive.execution.engine=tez", "set hs2sim.x = 42 "} {
		op, st := c.run(h, stmt)
		if op.HasResultSet || st.GetHasResultSet() || *st.OperationState != hiveserver.TOperationState_FINISHED_STATE {
			t.Errorf("%s: hasResultSet %v state %v", stmt, op.HasResultSet, st.OperationState)
		}
		c.closeOp(op)
	}
	if got := c.query(h, "SELECT current_database()"); got[0][0] != "sales" {
		t.Errorf("after USE: %v", got)
	}
	if got := c.query(h, "SET hs2sim.x"); got[0][0] != "hs2sim.x=42" {
		t.Errorf("SET: %v", got)
	}
	if got := c.query(h, "SET nope.nope"); got[0][0] != "nope.nope is undefined" {
		t.Errorf("SET undefined: %v", got)
	}
	if got := c.query(h, "SHOW TABLES"); !reflect.DeepEqual(got, [][]string{{"customers"}, {"orders"}}) {
		t.Errorf("SHOW TABLES: %v", got)
	}
	if got := c.query(h, "SHOW TABLES IN default LIKE 'emp*'"); !reflect.DeepEqual(got, [][]string{{"employees"}}) {
		t.Errorf("SHOW TABLES LIKE: %v", got)
	}
	if got := c.query(h, "SHOW DATABASES"); !reflect.DeepEqual(got, [][]string{{"default"}, {"sales"}, {"synth"}}) {
		t.Errorf("SHOW DATABASES: %v", got)
	}
	want := [][]string{{"customer_id", "int", ""}, {"name", "varchar(20)", ""}, {"country", "char(2)", ""}, {"vip", "boolean", ""}, {"signup", "date", ""}}
	if got := c.query(h, "DESCRIBE customers"); !reflect.DeepEqual(got, want) {
		t.Errorf("DESCRIBE: %v", got)
	}
	if got := c.query(h, "DESC synth.rows_10"); len(got) != 5 || got[3][0] != "s" || got[3][1] != "string" {
		t.Errorf("DESC synth: %v", got)
	}
	if got := c.query(h, "SELECT `name` FROM `default`.employees WHERE name = \"Bob\""); !reflect.DeepEqual(got, [][]string{{"Bob"}}) {
		t.Errorf("Hive quoting: %v", got)
	}
}

func TestGetInfo(t *testing.T) {
	s := startServer(t, Config{Version: "3.1.2"})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	for typ, want := range map[hiveserver.TGetInfoType]string{
		hiveserver.TGetInfoType_CLI_SERVER_NAME: "Hive",
		hiveserver.TGetInfoType_CLI_DBMS_NAME:   "Apache Hive",
		hiveserver.TGetInfoType_CLI_DBMS_VER:    "3.1.2",
	} {
		resp, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: h, InfoType: typ})
		if err != nil {
			t.Fatal(err)
		}
		ok(t, resp.Status)
		if resp.InfoValue.GetStringValue() != want {
			t.Errorf("%v = %q, want %q", typ, resp.InfoValue.GetStringValue(), want)
		}
	}
	resp, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: h, InfoType: hiveserver.TGetInfoType_CLI_TXN_CAPABLE})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || resp.Status.GetErrorMessage() != "Unrecognized GetInfoType value: CLI_TXN_CAPABLE" {
		t.Errorf("unsupported info: %v", resp.Status)
	}
}

func TestInvalidHandles(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	bogus := &hiveserver.TSessionHandle{SessionId: newHandle().thrift()}
	want := "Invalid SessionHandle: SessionHandle [" + uuidString(bogus.SessionId.GUID) + "]"
	r := c.exec(bogus, "SELECT 1", true)
	if r.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || r.Status.GetErrorMessage() != want {
		t.Errorf("exec: %v", r.Status)
	}
	gi, err := c.GetInfo(ctxT(t), &hiveserver.TGetInfoReq{SessionHandle: bogus, InfoType: hiveserver.TGetInfoType_CLI_DBMS_VER})
	if err != nil || gi.Status.GetErrorMessage() != want {
		t.Errorf("GetInfo: %v %v", gi, err)
	}
	cs, err := c.CloseSession(ctxT(t), &hiveserver.TCloseSessionReq{SessionHandle: bogus})
	if err != nil || cs.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS {
		t.Errorf("CloseSession: %v %v", cs, err)
	}
	// a right GUID with a wrong secret is no match either
	h := c.open(nil)
	defer c.closeSession(h)
	forged := &hiveserver.TSessionHandle{SessionId: &hiveserver.THandleIdentifier{GUID: h.SessionId.GUID, Secret: make([]byte, 16)}}
	if r := c.exec(forged, "SELECT 1", true); r.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS {
		t.Errorf("forged secret accepted")
	}

	op := &hiveserver.TOperationHandle{OperationId: newHandle().thrift(), OperationType: hiveserver.TOperationType_EXECUTE_STATEMENT, HasResultSet: true}
	wantOp := "Invalid OperationHandle: OperationHandle [opType=EXECUTE_STATEMENT, getHandleIdentifier()=" + uuidString(op.OperationId.GUID) + "]"
	st, err := c.GetOperationStatus(ctxT(t), &hiveserver.TGetOperationStatusReq{OperationHandle: op})
	if err != nil || st.Status.GetErrorMessage() != wantOp {
		t.Errorf("status: %v %v", st, err)
	}
	if f := c.fetch(op, 10, hiveserver.TFetchOrientation_FETCH_NEXT); f.Status.GetErrorMessage() != wantOp {
		t.Errorf("fetch: %v", f.Status)
	}
	// Closing an operation twice: the second close finds no handle.
	real, _ := c.run(h, "SELECT 1")
	c.closeOp(real)
	co, err := c.CloseOperation(ctxT(t), &hiveserver.TCloseOperationReq{OperationHandle: real})
	if err != nil || co.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS || !strings.HasPrefix(co.Status.GetErrorMessage(), "Invalid OperationHandle") {
		t.Errorf("second close: %v %v", co, err)
	}
}

func TestCancelAndTimeout(t *testing.T) {
	s := startServer(t, Config{LongPoll: 100 * time.Millisecond})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(map[string]string{"set:hiveconf:hs2sim.exec_delay_ms": "60000"})
	defer c.closeSession(h)

	r := c.exec(h, "SELECT * FROM employees", true)
	ok(t, r.Status)
	st, err := c.GetOperationStatus(ctxT(t), &hiveserver.TGetOperationStatusReq{OperationHandle: r.OperationHandle})
	if err != nil || *st.OperationState != hiveserver.TOperationState_RUNNING_STATE || st.GetTaskStatus() != "[]" {
		t.Fatalf("running: %v %v", st, err)
	}
	md, err := c.GetResultSetMetadata(ctxT(t), &hiveserver.TGetResultSetMetadataReq{OperationHandle: r.OperationHandle})
	if err != nil || len(md.Schema.GetColumns()) != 6 {
		t.Errorf("metadata while running: %v %v", md, err)
	}
	if f := c.fetch(r.OperationHandle, 10, hiveserver.TFetchOrientation_FETCH_NEXT); f.Status.GetErrorMessage() != "Expected state FINISHED, but found RUNNING" {
		t.Errorf("fetch while running: %v", f.Status)
	}
	cr, err := c.CancelOperation(ctxT(t), &hiveserver.TCancelOperationReq{OperationHandle: r.OperationHandle})
	if err != nil {
		t.Fatal(err)
	}
	ok(t, cr.Status)
	if st := c.wait(r.OperationHandle); *st.OperationState != hiveserver.TOperationState_CANCELED_STATE {
		t.Errorf("after cancel: %v", st.OperationState)
	}
	cr, _ = c.CancelOperation(ctxT(t), &hiveserver.TCancelOperationReq{OperationHandle: r.OperationHandle})
	if cr.Status.GetErrorMessage() != "Illegal Operation state transition from CANCELED to CANCELED" {
		t.Errorf("second cancel: %v", cr.Status)
	}
	c.closeOp(r.OperationHandle)

	// queryTimeout
	tr, err := c.ExecuteStatement(ctxT(t), &hiveserver.TExecuteStatementReq{SessionHandle: h, Statement: "SELECT 1", RunAsync: true, QueryTimeout: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok(t, tr.Status)
	if st := c.wait(tr.OperationHandle); *st.OperationState != hiveserver.TOperationState_TIMEDOUT_STATE {
		t.Errorf("timeout: %v", st.OperationState)
	}
	c.closeOp(tr.OperationHandle)
}

func TestLongPoll(t *testing.T) {
	s := startServer(t, Config{LongPoll: 300 * time.Millisecond})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(map[string]string{"set:hiveconf:hs2sim.exec_delay_ms": "5000"})
	defer c.closeSession(h)
	r := c.exec(h, "SELECT 1", true)
	ok(t, r.Status)
	start := time.Now()
	st, err := c.GetOperationStatus(ctxT(t), &hiveserver.TGetOperationStatusReq{OperationHandle: r.OperationHandle})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); *st.OperationState != hiveserver.TOperationState_RUNNING_STATE || el < 250*time.Millisecond || el > 4*time.Second {
		t.Errorf("long poll returned %v after %v", st.OperationState, el)
	}
	c.closeOp(r.OperationHandle)

	// A status call returns as soon as the operation ends.
	s2 := startServer(t, Config{LongPoll: 20 * time.Second})
	c2 := dialRaw(t, s2, dialOpts{})
	h2 := c2.open(map[string]string{"set:hiveconf:hs2sim.exec_delay_ms": "200"})
	defer c2.closeSession(h2)
	r = c2.exec(h2, "SELECT 1", true)
	start = time.Now()
	st, err = c2.GetOperationStatus(ctxT(t), &hiveserver.TGetOperationStatusReq{OperationHandle: r.OperationHandle, GetProgressUpdate: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); *st.OperationState != hiveserver.TOperationState_FINISHED_STATE || el > 10*time.Second {
		t.Errorf("got %v after %v", st.OperationState, el)
	}
	if st.OperationCompleted == nil || st.GetOperationCompleted() < st.GetOperationStarted() {
		t.Errorf("timestamps: %v %v", st.OperationStarted, st.OperationCompleted)
	}
	c2.closeOp(r.OperationHandle)
}

func TestSessionsEndWithTheirConnection(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	r := c.exec(h, "SELECT 1", true)
	ok(t, r.Status)
	if st := s.Stats(); st.OpenSessions != 1 || st.OpenOperations != 1 || st.OpenConnections != 1 {
		t.Fatalf("stats %+v", st)
	}
	c.close()
	waitFor(t, 5*time.Second, func() error {
		if st := s.Stats(); st.OpenSessions != 0 || st.OpenOperations != 0 || st.OpenConnections != 0 {
			return errorf("stats %+v", st)
		}
		return nil
	})
	if st := s.Stats(); st.SessionsOpened != 1 || st.OperationsOpened != 1 {
		t.Errorf("cumulative: %+v", st)
	}
}

func TestMetadataCalls(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	rows := func(op *hiveserver.TOperationHandle, st *hiveserver.TStatus) [][]string {
		t.Helper()
		ok(t, st)
		defer c.closeOp(op)
		if st := c.wait(op); *st.OperationState != hiveserver.TOperationState_FINISHED_STATE {
			t.Fatalf("state %v", st.OperationState)
		}
		var out [][]string
		f := c.fetch(op, 1000, hiveserver.TFetchOrientation_FETCH_NEXT)
		ok(t, f.Status)
		for r := 0; ; r++ {
			row, more := rowStrings(f.Results.Columns, r)
			if !more {
				return out
			}
			out = append(out, row)
		}
	}
	sales := hiveserver.TPatternOrIdentifier("sales")
	sch, err := c.GetSchemas(ctxT(t), &hiveserver.TGetSchemasReq{SessionHandle: h, SchemaName: &sales})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(sch.OperationHandle, sch.Status); !reflect.DeepEqual(got, [][]string{{"sales", ""}}) {
		t.Errorf("schemas: %v", got)
	}
	pat := hiveserver.TPatternOrIdentifier("ord%")
	tb, err := c.GetTables(ctxT(t), &hiveserver.TGetTablesReq{SessionHandle: h, SchemaName: &sales, TableName: &pat})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(tb.OperationHandle, tb.Status); len(got) != 1 || got[0][1] != "sales" || got[0][2] != "orders" || got[0][3] != "TABLE" {
		t.Errorf("tables: %v", got)
	}
	tname := hiveserver.TPatternOrIdentifier("customers")
	cl, err := c.GetColumns(ctxT(t), &hiveserver.TGetColumnsReq{SessionHandle: h, SchemaName: &sales, TableName: &tname})
	if err != nil {
		t.Fatal(err)
	}
	got := rows(cl.OperationHandle, cl.Status)
	if len(got) != 5 || got[1][3] != "name" || got[1][4] != "12" || got[1][5] != "VARCHAR(20)" || got[1][6] != "20" || got[1][16] != "2" {
		t.Errorf("columns: %v", got)
	}
	ti, err := c.GetTypeInfo(ctxT(t), &hiveserver.TGetTypeInfoReq{SessionHandle: h})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(ti.OperationHandle, ti.Status); len(got) < 10 || got[4][0] != "INT" || got[4][1] != "4" {
		t.Errorf("type info: %v", got)
	}
	ca, err := c.GetCatalogs(ctxT(t), &hiveserver.TGetCatalogsReq{SessionHandle: h})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(ca.OperationHandle, ca.Status); len(got) != 0 {
		t.Errorf("catalogs: %v", got)
	}
	fn, err := c.GetFunctions(ctxT(t), &hiveserver.TGetFunctionsReq{SessionHandle: h, FunctionName: "%"})
	if err != nil || fn.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS {
		t.Errorf("GetFunctions: %v %v", fn, err)
	}
}

func TestGetQueryIdAndClientInfo(t *testing.T) {
	s := startServer(t, Config{})
	c := dialRaw(t, s, dialOpts{})
	h := c.open(nil)
	defer c.closeSession(h)
	op, _ := c.run(h, "SELECT 1")
	defer c.closeOp(op)
	q, err := c.GetQueryId(ctxT(t), &hiveserver.TGetQueryIdReq{OperationHandle: op})
	if err != nil || !regexp.MustCompile(`^hive_\d{14}_[0-9a-f-]{36}$`).MatchString(q.QueryId) {
		t.Errorf("query id %v %v", q, err)
	}
	// No status field: an unknown handle is an application exception, and
	// the connection stays usable.
	bad := &hiveserver.TOperationHandle{OperationId: newHandle().thrift()}
	var ae thrift.TApplicationException
	if _, err := c.GetQueryId(ctxT(t), &hiveserver.TGetQueryIdReq{OperationHandle: bad}); !errors.As(err, &ae) || ae.TypeId() != thrift.INTERNAL_ERROR {
		t.Errorf("bad handle: %v", err)
	}
	ci, err := c.SetClientInfo(ctxT(t), &hiveserver.TSetClientInfoReq{SessionHandle: h, Configuration: map[string]string{"ApplicationName": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	ok(t, ci.Status)
	dt, err := c.GetDelegationToken(ctxT(t), &hiveserver.TGetDelegationTokenReq{SessionHandle: h, Owner: "a", Renewer: "b"})
	if err != nil || dt.Status.StatusCode != hiveserver.TStatusCode_ERROR_STATUS {
		t.Errorf("delegation token: %v %v", dt, err)
	}
}

package hs2_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/hs2sim"
)

// metaRows runs a metadata call and returns its column names and rows.
func metaRows(t *testing.T, sess *hs2.Session, m hs2.MetaRequest) ([]string, [][]any) {
	t.Helper()
	ctx := context.Background()
	op, err := sess.Metadata(ctx, m)
	if err != nil {
		t.Fatalf("%s: %v", m.Call, err)
	}
	defer op.Close(ctx)
	if st, err := op.Wait(ctx, nil); err != nil || st.State != hs2.StateFinished {
		t.Fatalf("%s: %v %v", m.Call, st.State, err)
	}
	schema, err := op.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range schema {
		names = append(names, c.Name)
	}
	var rows [][]any
	for {
		b, err := op.Fetch(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if b.Rows == 0 {
			return names, rows
		}
		for r := 0; r < b.Rows; r++ {
			row := make([]any, len(b.Columns))
			for c := range b.Columns {
				row[c] = b.Columns[c].Value(r)
			}
			rows = append(rows, row)
		}
	}
}

func TestMetadataCalls(t *testing.T) {
	s := startSim(t, hs2sim.Config{})
	sess := open(t, s, aliceOpts(), hs2.SessionConfig{})
	pat := func(p string) *string { return &p }

	names, rows := metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaSchemas, Schema: pat("sal%")})
	if names[0] != "TABLE_SCHEM" || len(rows) != 1 || rows[0][0] != "sales" {
		t.Fatalf("GetSchemas: %v %v", names, rows)
	}
	_, rows = metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaTables, Schema: pat("sales"), TableTypes: []string{"TABLE"}})
	var tables []string
	for _, r := range rows {
		tables = append(tables, r[2].(string)+":"+r[3].(string))
	}
	if strings.Join(tables, ",") != "customers:TABLE,orders:TABLE" {
		t.Fatalf("GetTables: %v", tables)
	}
	_, rows = metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaColumns, Schema: pat("sales"), Table: pat("orders"), Column: pat("amount")})
	if len(rows) != 1 || rows[0][3] != "amount" || rows[0][5] != "DECIMAL(10,2)" {
		t.Fatalf("GetColumns: %v", rows)
	}
	_, rows = metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaTableTypes})
	if len(rows) != 3 || rows[0][0] != "TABLE" {
		t.Fatalf("GetTableTypes: %v", rows)
	}
	if _, rows = metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaCatalogs}); len(rows) != 0 {
		t.Fatalf("GetCatalogs: %v", rows)
	}
	if _, rows = metaRows(t, sess, hs2.MetaRequest{Call: hs2.MetaTypeInfo}); len(rows) < 10 {
		t.Fatalf("GetTypeInfo: %d rows", len(rows))
	}
	name, err := sess.Info(context.Background(), hs2.InfoDBMSName)
	if err != nil || name != "Apache Hive" {
		t.Fatalf("GetInfo: %q %v", name, err)
	}
}

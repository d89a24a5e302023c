package hs2sim

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/beltran/gohive"
)

// gohive is a third-party HS2 client: it must work against the simulator
// on every transport. Note its quirks: protocol V6, and USE <db> after
// OpenSession when Database is set.

type gohiveCase struct {
	name  string
	cfg   Config
	auth  string
	setup func(*gohive.ConnectConfiguration)
}

var gohiveCases = []gohiveCase{
	{name: "sasl", cfg: Config{}, auth: "NONE"},
	{name: "nosasl", cfg: Config{Auth: "nosasl"}, auth: "NOSASL"},
	{name: "http", cfg: Config{Transport: "http"}, auth: "NONE", setup: func(c *gohive.ConnectConfiguration) {
		c.TransportMode = "http"
		c.DisableKeepAlives = true
	}},
	{name: "ldap", cfg: Config{Auth: "ldap", Users: map[string]string{"gh": "pw"}}, auth: "LDAP"},
}

func gohiveConnect(t *testing.T, s *Server, tc gohiveCase, db string) *gohive.Connection {
	t.Helper()
	cfg := gohive.NewConnectConfiguration()
	cfg.Username, cfg.Password, cfg.Database = "gh", "pw", db
	if tc.setup != nil {
		tc.setup(cfg)
	}
	conn, err := gohive.Connect(s.Host(), s.Port(), tc.auth, cfg)
	if err != nil {
		t.Fatalf("gohive connect: %v", err)
	}
	return conn
}

func TestGohiveAllTypes(t *testing.T) {
	for _, tc := range gohiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.cfg)
			conn := gohiveConnect(t, s, tc, "")
			defer conn.Close()
			ctx := context.Background()
			cur := conn.Cursor()
			defer cur.Close()
			cur.Exec(ctx, "SELECT * FROM all_types ORDER BY id")
			if cur.Err != nil {
				t.Fatal(cur.Err)
			}
			desc := cur.Description()
			if len(desc) != 15 || desc[8][0] != "all_types.c_decimal" || desc[8][1] != "DECIMAL_TYPE" {
				t.Errorf("description: %v", desc)
			}
			var got [][]any
			for cur.HasMore(ctx) {
				var (
					id                 int32
					b                  *bool
					ti                 *int8
					si                 *int16
					i                  *int32
					bi                 *int64
					f, d               *float64
					dec, s, vc, ch, dt *string
					ts                 *string
					bin                []byte
				)
				cur.FetchOne(ctx, &id, &b, &ti, &si, &i, &bi, &f, &d, &dec, &s, &vc, &ch, &dt, &ts, &bin)
				if cur.Err != nil {
					t.Fatal(cur.Err)
				}
				got = append(got, []any{id, deref(b), deref(ti), deref(si), deref(i), deref(bi), deref(f), deref(d),
					deref(dec), deref(s), deref(vc), deref(ch), deref(dt), deref(ts), bin})
			}
			want := [][]any{
				{int32(1), true, int8(1), int16(100), int32(1000), int64(10000000000), 1.5, 2.25, "12.50", "hello", "varchar one", "ab   ", "2024-01-15", "2024-01-15 10:30:00", []byte{1, 2, 0xff}},
				{int32(2), false, int8(-128), int16(-32768), int32(-2147483648), int64(-9223372036854775808), -0.5, -1e10, "-99999999.99", "", "v2", "abcde", "1970-01-01", "1970-01-01 00:00:00.123", []byte{}},
				{int32(3), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, []byte(nil)},
				{int32(4), true, int8(127), int16(32767), int32(2147483647), int64(9223372036854775807), 3.25, 0.001, "0.01", "unicode ✓ é", "x", "z    ", "2099-12-31", "2099-12-31 23:59:59.999999", []byte("bin")},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows:\n got  %v\n want %v", got, want)
			}
			// gohive reports a NULL binary as an empty slice; RowMap shows it.
			cur.Exec(ctx, "SELECT c_binary FROM all_types WHERE id = 3")
			if m := cur.RowMap(ctx); cur.Err != nil || m["c_binary"] != nil {
				t.Errorf("NULL binary: %v %v", m, cur.Err)
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestGohiveErrors(t *testing.T) {
	for _, tc := range gohiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.cfg)
			conn := gohiveConnect(t, s, tc, "sales")
			defer conn.Close()
			ctx := context.Background()
			cur := conn.Cursor()
			defer cur.Close()

			// Database "sales" was applied with USE.
			cur.Exec(ctx, "SELECT count(*) FROM customers")
			var n int64
			if cur.FetchOne(ctx, &n); cur.Err != nil || n != 4 {
				t.Errorf("count: %d %v", n, cur.Err)
			}

			cur.Exec(ctx, "SELECT * FROM missing")
			var he gohive.HiveError
			if !errors.As(cur.Err, &he) || he.ErrorCode != 10001 ||
				he.Message != "Error while compiling statement: FAILED: SemanticException [Error 10001]: Line 1:14 Table not found 'missing'" {
				t.Errorf("table not found: %#v", cur.Err)
			}
			cur.Exec(ctx, "SELEC 1")
			if !errors.As(cur.Err, &he) || he.ErrorCode != 40000 || !strings.Contains(he.Message, "ParseException line 1:0 cannot recognize input near 'SELEC' '1' '<EOF>'") {
				t.Errorf("parse: %#v", cur.Err)
			}
			s.FailQueries(true)
			cur.Exec(ctx, "SELECT 1")
			if cur.Err == nil || cur.Err.Error() != "Error while processing statement: FAILED: Execution Error, return code 2 from org.apache.hadoop.hive.ql.exec.mr.MapRedTask" {
				t.Errorf("runtime: %v", cur.Err)
			}
			s.FailQueries(false)
			cur.Exec(ctx, "SELECT name FROM customers WHERE customer_id = 2")
			var name string
			if cur.FetchOne(ctx, &name); cur.Err != nil || name != "Globex" {
				t.Errorf("after errors: %q %v", name, cur.Err)
			}
		})
	}
}

func TestGohiveSyntheticAndFetchSize(t *testing.T) {
	s := startServer(t, Config{})
	cfg := gohive.NewConnectConfiguration()
	cfg.FetchSize = 777
	conn, err := gohive.Connect(s.Host(), s.Port(), "NONE", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	cur := conn.Cursor()
	defer cur.Close()
	cur.Exec(ctx, "SELECT * FROM synth.rows_5000")
	var r int64
	for cur.HasMore(ctx) {
		var id int64
		var i *int32
		var d *float64
		var s *string
		var b *bool
		cur.FetchOne(ctx, &id, &i, &d, &s, &b)
		if cur.Err != nil {
			t.Fatal(cur.Err)
		}
		if id != r {
			t.Fatalf("row %d has id %d", r, id)
		}
		checkSynthRow(t, r, i, d, s, b)
		r++
	}
	if r != 5000 {
		t.Errorf("%d rows", r)
	}
}

package hs2sim

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hiveqd/hiveqd/hs2sim/synth"
	"modernc.org/sqlite"
)

// table is a catalog entry. Sample tables live in SQLite; synthetic ones
// (database synth) are generated and exist for every row count.
type table struct {
	db, name string
	cols     []column
	synth    synth.Kind // 0 for SQLite tables
	rows     int64      // synthetic row count
}

// catalog is the simulator's metastore: Hive databases and their tables.
type catalog struct {
	dbs map[string]map[string]*table
}

func (c *catalog) hasDB(db string) bool {
	_, ok := c.dbs[strings.ToLower(db)]
	return ok || strings.EqualFold(db, synth.Database)
}

// databases lists database names sorted, synth included.
func (c *catalog) databases() []string {
	out := []string{synth.Database}
	for db := range c.dbs {
		out = append(out, db)
	}
	sort.Strings(out)
	return out
}

// synthExamples are the synthetic tables SHOW TABLES lists; any row count
// can be queried.
var synthExamples = []int64{0, 1000, 1_000_000, 10_000_000}

// tables lists a database's table names sorted.
func (c *catalog) tables(db string) []string {
	db = strings.ToLower(db)
	var out []string
	if db == synth.Database {
		for _, k := range []synth.Kind{synth.Rows, synth.Wide} {
			for _, n := range synthExamples {
				out = append(out, synth.TableName(k, n))
			}
		}
	}
	for name := range c.dbs[db] {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// lookup finds db.name (case-insensitive).
func (c *catalog) lookup(db, name string) *table {
	db, name = strings.ToLower(db), strings.ToLower(name)
	if db == synth.Database {
		k, n, ok := synth.ParseTable(name)
		if !ok {
			return nil
		}
		t := &table{db: db, name: name, synth: k, rows: n}
		for _, sc := range k.Columns() {
			typ, _ := parseHiveType(sc.Type)
			t.cols = append(t.cols, column{name: sc.Name, typ: typ})
		}
		return t
	}
	return c.dbs[db][name]
}

// openSQLite creates the sample databases in shared-cache in-memory SQLite
// databases, one per Hive database, unique to this server. Every pooled
// connection ATTACHes them under their Hive names, so "db"."table" resolves
// as in Hive. The returned *sql.Conn pins the in-memory data: SQLite drops
// a memory database when its last connection closes.
func openSQLite(ctx context.Context, tables []sampleTable) (*sql.DB, *sql.Conn, *catalog, error) {
	if err := registerFunctions(); err != nil {
		return nil, nil, nil, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, nil, err
	}
	prefix := "hs2sim-" + hex.EncodeToString(id[:])
	cat := &catalog{dbs: map[string]map[string]*table{}}
	for _, st := range tables {
		if cat.dbs[st.db] == nil {
			cat.dbs[st.db] = map[string]*table{}
		}
		t := &table{db: st.db, name: st.name}
		for _, cd := range st.cols {
			typ, ok := parseHiveType(cd[1])
			if !ok {
				return nil, nil, nil, fmt.Errorf("hs2sim: sample table %s.%s: bad type %q", st.db, st.name, cd[1])
			}
			t.cols = append(t.cols, column{name: cd[0], typ: typ})
		}
		cat.dbs[st.db][st.name] = t
	}
	var attach []string
	for db := range cat.dbs {
		attach = append(attach, fmt.Sprintf("ATTACH DATABASE 'file:%s-%s?mode=memory&cache=shared' AS %s", prefix, db, sqlIdent(db)))
	}
	sort.Strings(attach)
	base, err := sqlite.NewConnector("file:" + prefix + "-main?mode=memory&cache=shared&_dqs=0")
	if err != nil {
		return nil, nil, nil, err
	}
	ac := attachConnector{Connector: base, attach: attach, readOnly: new(atomic.Bool)}
	db := sql.OpenDB(ac)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	pin, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	fail := func(err error) (*sql.DB, *sql.Conn, *catalog, error) {
		pin.Close()
		db.Close()
		return nil, nil, nil, err
	}
	for _, st := range tables {
		t := cat.dbs[st.db][st.name]
		var defs, marks []string
		for _, c := range t.cols {
			defs = append(defs, sqlIdent(c.name)+" "+c.typ.sqliteDecl())
			marks = append(marks, "?")
		}
		q := fmt.Sprintf("CREATE TABLE %s.%s (%s)", sqlIdent(st.db), sqlIdent(st.name), strings.Join(defs, ", "))
		if _, err := pin.ExecContext(ctx, q); err != nil {
			return fail(fmt.Errorf("hs2sim: %s: %w", q, err))
		}
		ins := fmt.Sprintf("INSERT INTO %s.%s VALUES (%s)", sqlIdent(st.db), sqlIdent(st.name), strings.Join(marks, ", "))
		for _, r := range st.rows {
			if _, err := pin.ExecContext(ctx, ins, r...); err != nil {
				return fail(fmt.Errorf("hs2sim: insert into %s.%s: %w", st.db, st.name, err))
			}
		}
	}
	if _, err := pin.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		return fail(err)
	}
	ac.readOnly.Store(true)
	return db, pin, cat, nil
}

var (
	registerOnce sync.Once
	registerErr  error
)

// registerFunctions adds the Hive functions SQLite lacks to the driver.
// Registration is process-wide, hence once.
func registerFunctions() error {
	registerOnce.Do(func() {
		// assert_true(cond): Hive's way to fail a query at run time.
		registerErr = sqlite.RegisterScalarFunction("assert_true", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			if b, err := toBool(args[0]); err == nil && !b {
				return nil, errors.New("ASSERT_TRUE(): assertion failed.")
			}
			return nil, nil
		})
		if registerErr != nil {
			return
		}
		// repeat(str, n): Hive's string repetition; NULL in, NULL out.
		registerErr = sqlite.RegisterDeterministicScalarFunction("repeat", 2, hiveRepeat)
	})
	return registerErr
}

// maxRepeatBytes bounds repeat()'s result: well past any gRPC message, well
// under the simulator's memory.
const maxRepeatBytes = 64 << 20

func hiveRepeat(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	if args[0] == nil || args[1] == nil {
		return nil, nil
	}
	var str string
	switch v := args[0].(type) {
	case string:
		str = v
	case []byte:
		str = string(v)
	default:
		str = fmt.Sprint(v)
	}
	n, ok := args[1].(int64)
	if !ok {
		return nil, fmt.Errorf("repeat(): the count must be an integer, not %T", args[1])
	}
	if n <= 0 || str == "" {
		return "", nil
	}
	if int64(len(str))*n > maxRepeatBytes {
		return nil, fmt.Errorf("repeat(): result over %d bytes", maxRepeatBytes)
	}
	return strings.Repeat(str, int(n)), nil
}

// attachConnector attaches the Hive databases to every new connection and
// makes it read-only: queries must not change the sample data.
type attachConnector struct {
	driver.Connector
	attach   []string
	readOnly *atomic.Bool // set once the sample data is loaded
}

func (a attachConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := a.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := c.(driver.ExecerContext)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("hs2sim: sqlite connection cannot exec")
	}
	for _, q := range a.attach {
		if _, err := ex.ExecContext(ctx, q, nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("hs2sim: %s: %w", q, err)
		}
	}
	if a.readOnly.Load() {
		if _, err := ex.ExecContext(ctx, "PRAGMA query_only = 1", nil); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

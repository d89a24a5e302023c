package hs2sim

// sampleTable is a table the simulator loads at start: columns as
// {name, Hive type}, rows as SQLite values (nil = NULL).
type sampleTable struct {
	db, name string
	cols     [][2]string
	rows     [][]any
}

// sampleTables are the simulator's sample data: every Hive primitive type
// with NULLs in default.all_types, and small related tables in default and
// sales.
var sampleTables = []sampleTable{
	{
		db: "default", name: "all_types",
		cols: [][2]string{
			{"id", "int"}, {"c_boolean", "boolean"}, {"c_tinyint", "tinyint"}, {"c_smallint", "smallint"},
			{"c_int", "int"}, {"c_bigint", "bigint"}, {"c_float", "float"}, {"c_double", "double"},
			{"c_decimal", "decimal(10,2)"}, {"c_string", "string"}, {"c_varchar", "varchar(20)"},
			{"c_char", "char(5)"}, {"c_date", "date"}, {"c_timestamp", "timestamp"}, {"c_binary", "binary"},
		},
		rows: [][]any{
			{1, 1, 1, 100, 1000, int64(10000000000), 1.5, 2.25, "12.50", "hello", "varchar one", "ab   ",
				"2024-01-15", "2024-01-15 10:30:00", []byte{0x01, 0x02, 0xff}},
			{2, 0, -128, -32768, -2147483648, int64(-9223372036854775808), -0.5, -1e10, "-99999999.99", "", "v2", "abcde",
				"1970-01-01", "1970-01-01 00:00:00.123", []byte{}},
			{3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
			{4, 1, 127, 32767, 2147483647, int64(9223372036854775807), 3.25, 0.001, "0.01", "unicode ✓ é", "x", "z    ",
				"2099-12-31", "2099-12-31 23:59:59.999999", []byte("bin")},
		},
	},
	{
		db: "default", name: "employees",
		cols: [][2]string{{"id", "int"}, {"name", "string"}, {"dept", "string"}, {"salary", "decimal(10,2)"},
			{"hired", "date"}, {"active", "boolean"}},
		rows: [][]any{
			{1, "Alice", "eng", "120000.00", "2019-03-01", 1},
			{2, "Bob", "eng", "95000.50", "2020-07-15", 1},
			{3, "Carol", "sales", "70000.00", "2018-01-10", 0},
			{4, "Dan", nil, "50000.00", "2021-11-30", 1},
			{5, "Eve", "sales", nil, nil, 1},
			{6, "Frank", "ops", "64000.25", "2022-05-02", nil},
		},
	},
	{
		db: "sales", name: "orders",
		cols: [][2]string{{"order_id", "bigint"}, {"customer_id", "int"}, {"product", "string"}, {"amount", "decimal(10,2)"},
			{"quantity", "int"}, {"order_date", "date"}, {"shipped", "boolean"}, {"created_at", "timestamp"}},
		rows: [][]any{
			{1001, 1, "widget", "19.99", 2, "2024-03-01", 1, "2024-03-01 09:15:00"},
			{1002, 2, "gadget", "250.00", 1, "2024-03-02", 1, "2024-03-02 14:00:30"},
			{1003, 1, "widget", "39.98", 4, "2024-03-05", 0, "2024-03-05 18:45:10.5"},
			{1004, 3, "gizmo", "5.25", 10, "2024-03-07", 1, "2024-03-07 08:00:00"},
			{1005, 4, "gadget", "125.00", 1, "2024-03-09", nil, "2024-03-09 12:12:12"},
			{1006, 2, nil, "0.00", 0, "2024-03-10", 0, nil},
			{1007, 3, "widget", "9.99", 1, nil, 1, "2024-03-11 23:59:59"},
			{1008, 1, "gizmo", nil, nil, "2024-03-12", 0, "2024-03-12 00:00:01"},
		},
	},
	{
		db: "sales", name: "customers",
		cols: [][2]string{{"customer_id", "int"}, {"name", "varchar(20)"}, {"country", "char(2)"}, {"vip", "boolean"},
			{"signup", "date"}},
		rows: [][]any{
			{1, "Acme Corp", "US", 1, "2020-01-01"},
			{2, "Globex", "DE", 0, "2021-06-15"},
			{3, "Initech", "US", 0, nil},
			{4, "Umbrella", nil, 1, "2022-02-28"},
		},
	},
}

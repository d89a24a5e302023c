package query

import "testing"

func TestIsRead(t *testing.T) {
	for _, tc := range []struct {
		stmt string
		want bool
	}{
		{"SELECT 1", true},
		{"select * from t", true},
		{"  \n\tSelect x FROM t", true},
		{"(SELECT a FROM t) UNION ALL (SELECT b FROM u)", true},
		{"((select 1))", true},
		{"-- a comment\nSELECT 1", true},
		{"/* block\n comment */ SELECT 1", true},
		{"/* c1 */ -- c2\n ( /* c3 */ select 1)", true},
		{"WITH c AS (SELECT 1) SELECT * FROM c", true},
		{"WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", false},
		{"with c as (select 1) insert overwrite table t select * from c", false},
		{"SHOW TABLES", true},
		{"show databases", true},
		{"DESCRIBE t", true},
		{"DESC FORMATTED t", true},
		{"EXPLAIN SELECT 1", true},
		{"EXPLAIN EXTENDED SELECT 1", true},
		{"EXPLAIN INSERT INTO t SELECT 1", true}, // a plan: nothing runs
		{"EXPLAIN ANALYZE SELECT 1", false},
		{"explain analyze select 1", false},
		{"EXPLAIN REOPTIMIZATION SELECT 1", false},
		{"INSERT INTO t VALUES (1)", false},
		{"INSERT OVERWRITE TABLE t SELECT * FROM u", false},
		{"FROM u INSERT INTO t SELECT *", false},
		{"FROM u SELECT *", false}, // unusual: not recognised, never re-run
		{"CREATE TABLE t (a int)", false},
		{"CREATE TABLE t AS SELECT 1", false},
		{"ALTER TABLE t ADD COLUMNS (b int)", false},
		{"DROP TABLE t", false},
		{"LOAD DATA INPATH '/x' INTO TABLE t", false},
		{"MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE", false},
		{"UPDATE t SET a = 1", false},
		{"DELETE FROM t", false},
		{"TRUNCATE TABLE t", false},
		{"MSCK REPAIR TABLE t", false},
		{"ANALYZE TABLE t COMPUTE STATISTICS", false},
		{"SET hive.exec.parallel=true", false},
		{"USE db", false},
		{"", false},
		{"-- only a comment", false},
		{"/* unterminated SELECT 1", false},
		{"'SELECT' 1", false},
		{"`select`", false},
		{"SELECTX 1", false},
		{"-- SELECT\nDROP TABLE t", false},
		{"/* SELECT */ DROP TABLE t", false},
		{"WITH c AS (SELECT 'insert') SELECT * FROM c", true}, // quoted text is not a keyword
		{"SELECT 1;", true},
		{"SELECT 1; DROP TABLE t", false},
		{"SELECT ';' FROM t", true},
	} {
		if got := IsRead(tc.stmt); got != tc.want {
			t.Errorf("IsRead(%q) = %v, want %v", tc.stmt, got, tc.want)
		}
	}
}

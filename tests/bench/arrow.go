package main

import (
	"context"
	"fmt"

	"github.com/apache/arrow-adbc/go/adbc"
	adbcfsql "github.com/apache/arrow-adbc/go/adbc/driver/flightsql"
	arrowmem "github.com/apache/arrow-go/v18/arrow/memory"
)

// modeADBC is the ADBC Flight SQL driver through hiveqd's Flight SQL port.
const modeADBC = "adbc"

// adbc reads the result through the ADBC Flight SQL driver, record batch
// by record batch (Arrow IPC decoded, the columns touched by counting).
func (w *worker) adbc(ctx context.Context, req workerRequest) (int64, error) {
	cn := w.adbcs[req.Addr]
	if cn == nil {
		db, err := adbcfsql.NewDriver(arrowmem.DefaultAllocator).NewDatabase(map[string]string{adbc.OptionKeyURI: "grpc://" + req.Addr})
		if err != nil {
			return 0, err
		}
		if cn, err = db.Open(ctx); err != nil {
			return 0, err
		}
		w.adbcs[req.Addr] = cn
	}
	st, err := cn.NewStatement()
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := st.SetSqlQuery(req.Stmt); err != nil {
		return 0, err
	}
	rdr, _, err := st.ExecuteQuery(ctx)
	if err != nil {
		return 0, err
	}
	defer rdr.Release()
	var rows int64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if int(rec.NumCols()) == 0 {
			return rows, fmt.Errorf("record without columns")
		}
		rows += rec.NumRows()
	}
	return rows, rdr.Err()
}

// Target: ADBC through hiveqd's Flight SQL port reads ≥ 1.5× the rows/s of
// gohive reading HS2 directly, and hiveqd spends no more CPU per row on
// Arrow than on hiveq.v1; the three clients run interleaved in one run.
func arrowFront(ctx context.Context, b *bench) ([]metric, error) {
	z := b.sizes()
	if err := b.setup(ctx, 0, 0); err != nil {
		return nil, err
	}
	if err := b.warm(ctx, modeADBC, modeGRPC, modeGohive); err != nil {
		return nil, err
	}
	var s series
	a := s.add("ADBC Flight SQL client via hiveqd", "rows/s")
	h := s.add("hiveq.v1 gRPC client via hiveqd", "rows/s")
	g := s.add("gohive (direct, row by row)", "rows/s")
	ra := s.target("ADBC via hiveqd ÷ gohive direct", "ratio", ">=", 1.5)
	rh := s.add("ADBC via hiveqd ÷ hiveq.v1 via hiveqd", "ratio")
	ac := s.add("hiveqd CPU per 1M rows: Flight SQL (Arrow)", "s")
	hc := s.add("hiveqd CPU per 1M rows: hiveq.v1", "s")
	rc := s.target("hiveqd CPU per row: Arrow ÷ hiveq.v1", "ratio", "<=", 1)
	cc := s.add("client CPU per 1M rows: ADBC", "s")
	gc := s.add("client CPU per 1M rows: hiveq.v1", "s")
	stmt := synth(z.unpacedRows)
	for i := range z.runs {
		got := map[string]sample{}
		// gohive sits between the two hiveqd clients: each of them then
		// follows itself or gohive, never the other, so neither run pays
		// for the other's leftover work in hiveqd (its garbage, collected
		// by the next GC). In the order ADBC, hiveq.v1, gohive, ADBC
		// always followed a hiveqd run and hiveq.v1 half the time gohive.
		for _, mode := range order(i, modeADBC, modeGohive, modeGRPC) {
			st, want := stmt, z.unpacedRows
			if mode == modeGohive {
				st, want = synth(z.gohiveRows), z.gohiveRows
			}
			smp, err := b.stream(ctx, mode, st, 10_000, want)
			if err != nil {
				return s.out(), err
			}
			got[mode] = smp
		}
		aa, hh, gg := got[modeADBC], got[modeGRPC], got[modeGohive]
		a.push(aa.rate)
		h.push(hh.rate)
		g.push(gg.rate)
		ra.push(aa.rate / gg.rate)
		rh.push(aa.rate / hh.rate)
		ac.push(perM(aa.hiveqd, aa.rows))
		hc.push(perM(hh.hiveqd, hh.rows))
		rc.push(perM(aa.hiveqd, aa.rows) / perM(hh.hiveqd, hh.rows))
		cc.push(perM(aa.client, aa.rows))
		gc.push(perM(hh.client, hh.rows))
	}
	ra.Note = fmt.Sprintf("synthetic table (bigint, int, double, string, boolean with NULLs), %d rows per run through hiveqd, %d for gohive; fetch size 10000; simulator, hiveqd and client share the 2 cores", z.unpacedRows, z.gohiveRows)
	return s.out(), nil
}

package hs2sim

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/beltran/gohive/hiveserver"
	"github.com/hiveqd/hiveqd/hs2sim/synth"
)

// synthSource generates a synthetic table's rows straight into Thrift
// columns; cols are the picked column indexes of the family.
type synthSource struct {
	kind  synth.Kind
	total int64
	cols  []int
}

func (s *synthSource) synthetic() bool { return true }

func (s *synthSource) read(off int64, n int) ([]*hiveserver.TColumn, int) {
	if off > s.total {
		off = s.total
	}
	n = int(min(int64(n), s.total-off))
	out := make([]*hiveserver.TColumn, len(s.cols))
	for k, c := range s.cols {
		if s.kind == synth.Wide {
			out[k] = wideColumn(c, off, n)
		} else {
			out[k] = rowsColumn(c, off, n)
		}
	}
	return out, n
}

// bitmap collects NULL bits in HS2's BitSet.toByteArray layout.
type bitmap struct {
	b    []byte
	last int
}

func newBitmap(n int) *bitmap { return &bitmap{b: make([]byte, (n+7)/8), last: -1} }

func (m *bitmap) set(i int) {
	m.b[i/8] |= 1 << (i % 8)
	m.last = i
}

func (m *bitmap) bytes() []byte {
	if m.last < 0 {
		return []byte{}
	}
	return m.b[:m.last/8+1]
}

func rowsColumn(c int, off int64, n int) *hiveserver.TColumn {
	nulls := newBitmap(n)
	switch c {
	case 0:
		v := make([]int64, n)
		for i := range v {
			v[i] = synth.ID(off + int64(i))
		}
		return &hiveserver.TColumn{I64Val: &hiveserver.TI64Column{Values: v, Nulls: nulls.bytes()}}
	case 1:
		v := make([]int32, n)
		for i := range v {
			r := off + int64(i)
			if synth.INull(r) {
				nulls.set(i)
				continue
			}
			v[i] = synth.I(r)
		}
		return &hiveserver.TColumn{I32Val: &hiveserver.TI32Column{Values: v, Nulls: nulls.bytes()}}
	case 2:
		v := make([]float64, n)
		for i := range v {
			r := off + int64(i)
			if synth.DNull(r) {
				nulls.set(i)
				continue
			}
			v[i] = synth.D(r)
		}
		return &hiveserver.TColumn{DoubleVal: &hiveserver.TDoubleColumn{Values: v, Nulls: nulls.bytes()}}
	case 3:
		// One backing buffer per batch; each value is a substring of it.
		buf := make([]byte, 0, n*12)
		ends := make([]int, n)
		for i := range ends {
			r := off + int64(i)
			if synth.SNull(r) {
				nulls.set(i)
			} else {
				buf = synth.AppendS(buf, r)
			}
			ends[i] = len(buf)
		}
		all := unsafe.String(unsafe.SliceData(buf), len(buf))
		v := make([]string, n)
		start := 0
		for i, e := range ends {
			v[i] = all[start:e]
			start = e
		}
		return &hiveserver.TColumn{StringVal: &hiveserver.TStringColumn{Values: v, Nulls: nulls.bytes()}}
	default:
		v := make([]bool, n)
		for i := range v {
			r := off + int64(i)
			if synth.BNull(r) {
				nulls.set(i)
				continue
			}
			v[i] = synth.B(r)
		}
		return &hiveserver.TColumn{BoolVal: &hiveserver.TBoolColumn{Values: v, Nulls: nulls.bytes()}}
	}
}

func wideColumn(c int, off int64, n int) *hiveserver.TColumn {
	nulls := newBitmap(n)
	if c == 0 {
		v := make([]int64, n)
		for i := range v {
			v[i] = synth.ID(off + int64(i))
		}
		return &hiveserver.TColumn{I64Val: &hiveserver.TI64Column{Values: v, Nulls: nulls.bytes()}}
	}
	v := make([]string, n)
	for i := range v {
		r := off + int64(i)
		if synth.WideNull(c, r) {
			nulls.set(i)
			continue
		}
		v[i] = synth.W(c, r)
	}
	return &hiveserver.TColumn{StringVal: &hiveserver.TStringColumn{Values: v, Nulls: nulls.bytes()}}
}

// compileSynth handles the statements synthetic tables support:
// SELECT * | col, ... | count(*) FROM synth.<table> [alias] [LIMIT n].
func (e *engine) compileSynth(toks []token, ref tableRef) (*plan, *hiveError) {
	unsupported := semanticError(errGeneric, "hs2sim: synthetic tables support only SELECT *, a column list or count(*) FROM the table [LIMIT n]")
	t := ref.tbl
	i := 1
	star, count := false, false
	var picked []int
	switch {
	case toks[i].isOp("*"):
		star = true
		i++
	case toks[i].is("count") && toks[i+1].isOp("(") && toks[i+2].isOp("*") && toks[i+3].isOp(")"):
		count = true
		i += 4
	default:
		for {
			name, ok := toks[i].ident()
			if !ok {
				return nil, unsupported
			}
			idx := -1
			for k, c := range t.cols {
				if strings.EqualFold(c.name, name) {
					idx = k
				}
			}
			if idx < 0 {
				return nil, semanticError(errInvalidTabAlias, fmt.Sprintf("Line %d:%d Invalid table alias or column reference '%s': (possible column names are: %s)",
					toks[i].line, toks[i].col, strings.ToLower(name), possibleColumns([]tableRef{ref})))
			}
			picked = append(picked, idx)
			i++
			if !toks[i].isOp(",") {
				break
			}
			i++
		}
	}
	if !toks[i].is("from") || i+1 != ref.start {
		return nil, unsupported
	}
	i = ref.end
	if toks[i].is("as") {
		i++
	}
	if _, ok := toks[i].ident(); ok && !toks[i].is("limit") {
		i++
	}
	total := t.rows
	if toks[i].is("limit") {
		n, err := strconv.ParseInt(toks[i+1].text, 10, 64)
		if toks[i+1].kind != tkNumber || err != nil || n < 0 {
			return nil, parseErrorAt(toks, i+1)
		}
		total = min(total, n)
		i += 2
	}
	if toks[i].kind != tkEOF {
		return nil, unsupported
	}
	if count {
		return rowsPlan([]column{{name: "_c0", typ: tBigint}}, [][]any{{total}}), nil
	}
	if star {
		picked = make([]int, len(t.cols))
		for k := range picked {
			picked[k] = k
		}
	}
	cols := make([]column, len(picked))
	for k, idx := range picked {
		cols[k] = t.cols[idx]
		if star {
			cols[k].name = ref.alias + "." + t.cols[idx].name
		}
	}
	return &plan{hasResult: true, query: true, cols: cols, src: &synthSource{kind: t.synth, total: total, cols: picked}}, nil
}

package sqlcli

import (
	"bufio"
	"strconv"
	"strings"
	"unicode/utf8"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// formatter writes a result: the schema once, then batches, then finish
// (which writes what is still buffered, also after a failed query).
type formatter interface {
	schema(cols []*hiveqv1.ColumnSchema) error
	batch(b *batch) error
	finish() error
}

// tableFormat prints beeline's bordered table (left-aligned, one space
// before and two after the widest value). Column widths need every
// row, so it buffers up to chunk rows and then prints them as one table;
// a longer result is several tables, each with the header.
type tableFormat struct {
	w       *bufio.Writer
	chunk   int
	header  []string
	rows    [][]string
	printed bool // a chunk went out
	active  bool // a schema was seen
}

func (t *tableFormat) schema(cols []*hiveqv1.ColumnSchema) error {
	t.active = true
	t.header = make([]string, len(cols))
	for i, c := range cols {
		t.header[i] = tableCell(c.GetName())
	}
	return nil
}

func (t *tableFormat) batch(b *batch) error {
	for r := 0; r < b.rows; r++ {
		row := make([]string, len(b.cols))
		for c := range b.cols {
			v := &b.cols[c]
			if v.isNull(r) {
				row[c] = "NULL"
			} else {
				row[c] = tableCell(v.text(r))
			}
		}
		t.rows = append(t.rows, row)
		if len(t.rows) >= t.chunk {
			if err := t.flushChunk(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tableFormat) finish() error {
	if !t.active || (t.printed && len(t.rows) == 0) {
		return nil
	}
	return t.flushChunk() // an empty result still shows its header
}

func (t *tableFormat) flushChunk() error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range t.rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var border strings.Builder
	border.WriteByte('+')
	for _, w := range widths {
		border.WriteString(strings.Repeat("-", w+3))
		border.WriteByte('+')
	}
	border.WriteByte('\n')
	line := func(cells []string) {
		t.w.WriteByte('|')
		for i, cell := range cells {
			t.w.WriteByte(' ')
			t.w.WriteString(cell)
			t.w.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
			t.w.WriteByte('|')
		}
		t.w.WriteByte('\n')
	}
	t.w.WriteString(border.String())
	line(t.header)
	t.w.WriteString(border.String())
	for _, row := range t.rows {
		line(row)
	}
	_, err := t.w.WriteString(border.String())
	t.rows = t.rows[:0]
	t.printed = true
	if err != nil {
		return err
	}
	return t.w.Flush()
}

// tableCell escapes control characters so that a value stays on its line
// and the borders stay aligned.
func tableCell(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(r)|0x100, 16)[1:])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// csvFormat writes RFC 4180: CRLF line ends, a header row, and fields
// quoted when they hold a comma, quote, CR or LF. NULL is an empty field;
// an empty string is "" so the two stay apart.
type csvFormat struct {
	w   *bufio.Writer
	buf []byte
}

func (f *csvFormat) schema(cols []*hiveqv1.ColumnSchema) error {
	b := f.buf[:0]
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCSVField(b, c.GetName())
	}
	b = append(b, '\r', '\n')
	f.buf = b
	_, err := f.w.Write(b)
	return err
}

func (f *csvFormat) batch(bt *batch) error {
	for r := 0; r < bt.rows; r++ {
		b := f.buf[:0]
		for c := range bt.cols {
			if c > 0 {
				b = append(b, ',')
			}
			if v := &bt.cols[c]; !v.isNull(r) {
				b = appendCSVField(b, v.text(r))
			}
		}
		b = append(b, '\r', '\n')
		f.buf = b
		if _, err := f.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (f *csvFormat) finish() error { return nil }

func appendCSVField(b []byte, s string) []byte {
	if s != "" && !strings.ContainsAny(s, ",\"\r\n") {
		return append(b, s...)
	}
	b = append(b, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		b = append(b, s[:i+1]...)
		b = append(b, '"')
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}

// jsonFormat writes JSON Lines: one object per row, keys in schema order.
// Duplicate column names get a suffix (_2, _3, ...) so every key is
// unique.
type jsonFormat struct {
	w    *bufio.Writer
	keys [][]byte // each "name":
	buf  []byte
}

func (f *jsonFormat) schema(cols []*hiveqv1.ColumnSchema) error {
	seen := make(map[string]bool, len(cols))
	f.keys = make([][]byte, len(cols))
	for i, c := range cols {
		name := c.GetName()
		for n := 2; seen[name]; n++ {
			name = c.GetName() + "_" + strconv.Itoa(n)
		}
		seen[name] = true
		f.keys[i] = append(appendJSONString(nil, name), ':')
	}
	return nil
}

func (f *jsonFormat) batch(bt *batch) error {
	for r := 0; r < bt.rows; r++ {
		b := append(f.buf[:0], '{')
		for c := range bt.cols {
			if c > 0 {
				b = append(b, ',')
			}
			b = append(b, f.keys[c]...)
			b = bt.cols[c].appendJSON(b, r)
		}
		b = append(b, '}', '\n')
		f.buf = b
		if _, err := f.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (f *jsonFormat) finish() error { return nil }

// Formats are the --format values, in help order.
var Formats = []string{"table", "vertical", "csv", "tsv", "json"}

// newFormatter returns the formatter for a --format value.
func newFormatter(name string, w *bufio.Writer, chunk int) formatter {
	switch name {
	case "csv":
		return &csvFormat{w: w}
	case "tsv":
		return &tsvFormat{w: w}
	case "json":
		return &jsonFormat{w: w}
	case "vertical":
		return &verticalFormat{w: w}
	default:
		return &tableFormat{w: w, chunk: chunk}
	}
}

// verticalFormat is beeline's vertical format, for wide rows: each row is
// one "column  value" line per column (names padded to the widest), and
// rows are separated by a blank line. NULL is NULL, as in the table.
type verticalFormat struct {
	w     *bufio.Writer
	names []string
	rows  int
}

func (f *verticalFormat) schema(cols []*hiveqv1.ColumnSchema) error {
	width := 0
	for _, c := range cols {
		width = max(width, utf8.RuneCountInString(tableCell(c.GetName())))
	}
	f.names = make([]string, len(cols))
	for i, c := range cols {
		n := tableCell(c.GetName())
		f.names[i] = n + strings.Repeat(" ", width-utf8.RuneCountInString(n)+2)
	}
	return nil
}

func (f *verticalFormat) batch(b *batch) error {
	for r := 0; r < b.rows; r++ {
		if f.rows > 0 {
			f.w.WriteByte('\n')
		}
		f.rows++
		for c := range b.cols {
			f.w.WriteString(f.names[c])
			if v := &b.cols[c]; v.isNull(r) {
				f.w.WriteString("NULL")
			} else {
				f.w.WriteString(tableCell(v.text(r)))
			}
			if err := f.w.WriteByte('\n'); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *verticalFormat) finish() error { return nil }

// tsvFormat is tab-separated values with a header row (beeline's tsv2):
// tab, CR, LF and backslash in a value are escaped as \t, \r, \n and \\,
// so each row is one line. NULL is NULL, as in the table.
type tsvFormat struct {
	w   *bufio.Writer
	buf []byte
}

func (f *tsvFormat) schema(cols []*hiveqv1.ColumnSchema) error {
	b := f.buf[:0]
	for i, c := range cols {
		if i > 0 {
			b = append(b, '\t')
		}
		b = appendTSVField(b, c.GetName())
	}
	f.buf = append(b, '\n')
	_, err := f.w.Write(f.buf)
	return err
}

func (f *tsvFormat) batch(bt *batch) error {
	for r := 0; r < bt.rows; r++ {
		b := f.buf[:0]
		for c := range bt.cols {
			if c > 0 {
				b = append(b, '\t')
			}
			if v := &bt.cols[c]; v.isNull(r) {
				b = append(b, "NULL"...)
			} else {
				b = appendTSVField(b, v.text(r))
			}
		}
		f.buf = append(b, '\n')
		if _, err := f.w.Write(f.buf); err != nil {
			return err
		}
	}
	return nil
}

func (f *tsvFormat) finish() error { return nil }

func appendTSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\t\r\n\\") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\t':
			b = append(b, `\t`...)
		case '\r':
			b = append(b, `\r`...)
		case '\n':
			b = append(b, `\n`...)
		case '\\':
			b = append(b, `\\`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

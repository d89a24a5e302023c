package sqlcli_test

import (
	"testing"

	st "github.com/hiveqd/hiveqd/sqlcli/sqlclitest"
)

func TestVertical(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, allKinds()...))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "vertical", "SELECT 1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "t.b    true\nt.i    -7\nt.l    9007199254740993\nt.d    1.5\nt.s    héllo, \"world\"\nt.bin  AAEC/w==\n" +
		"\n" +
		"t.b    false\nt.i    NULL\nt.l    NULL\nt.d    NULL\nt.s    NULL\nt.bin  NULL\n" +
		"\n" +
		"t.b    NULL\nt.i    2147483647\nt.l    -9223372036854775808\nt.d    1e+21\nt.s    \nt.bin  \n"
	if r.stdout != want {
		t.Errorf("vertical:\n%q\nwant:\n%q", r.stdout, want)
	}
}

func TestTSV(t *testing.T) {
	srv := st.Start(t, st.Canned(nil, st.Schema(st.Col("a", "string", kString), st.Col("b", "int", kInt32)),
		st.Batch(0, 3, st.Strings([]string{"tab\there", "line\nbreak\\", ""}, 2), st.Int32s([]int32{1, 0, 3}, 1))))
	r := run(t, t.Context(), nil, "", "--addr", srv.Addr, "--format", "tsv", "SELECT 1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "a\tb\n" + `tab\there` + "\t1\n" + `line\nbreak\\` + "\tNULL\nNULL\t3\n"
	if r.stdout != want {
		t.Errorf("tsv:\n%q\nwant:\n%q", r.stdout, want)
	}
}

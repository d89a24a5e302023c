package cliflags

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

func TestError(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("addr", "", "")
	fs.String("e", "", "")
	fs.Duration("timeout", 0, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "unknown flag --nope"},
		{[]string{"-x"}, "unknown flag -x"},
		{[]string{"--nope=1"}, "unknown flag --nope"},
		{[]string{"--addr"}, "flag --addr needs a value"},
		{[]string{"-e"}, "flag -e needs a value"},
		{[]string{"--timeout", "soon"}, `invalid value "soon" for flag --timeout: parse error`},
	} {
		if got := Error(fs.Parse(tc.args)).Error(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
	if err := errors.New("other"); Error(err) != err {
		t.Error("other errors change")
	}
}

func TestPrint(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("addr", "127.0.0.1:9090", "the `address`")
	fs.Bool("force", false, "go on")
	fs.Duration("timeout", 0, "per statement")
	fs.Duration("grace", 10*time.Second, "grace")
	fs.Func("hivevar", "a variable", func(string) error { return nil })
	var out bytes.Buffer
	Print(&out, FromFlagSet(fs, func(n string) string {
		if n == "force" {
			return "Statements"
		}
		return ""
	}))
	got := out.String()
	for _, line := range []string{"  --addr address ", "the address [default \"127.0.0.1:9090\"]", "  --grace duration ", "grace [default 10s]", "  --hivevar key=value ", "\nStatements:\n  --force  go on\n"} {
		if !bytes.Contains([]byte(got), []byte(line)) {
			t.Errorf("help lacks %q:\n%s", line, got)
		}
	}
}

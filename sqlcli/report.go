package sqlcli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

func stateName(s hiveqv1.QueryState) string {
	return strings.TrimPrefix(s.String(), "QUERY_STATE_")
}

// printError writes a failed call: the message, then the gRPC code and
// every google.rpc.ErrorInfo field on one key=value line (sql_state,
// error_code and server first, as beeline shows state and code).
func printError(w io.Writer, err error) {
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintf(w, "Error: %v\n", err)
		return
	}
	fmt.Fprintf(w, "Error: %s\n", st.Message())
	fields := []string{"code=" + codeName(st.Code())}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			fields = append(fields, kv("reason", d.GetReason()), kv("domain", d.GetDomain()))
			meta := d.GetMetadata()
			for _, k := range []string{"sql_state", "error_code", "server"} {
				if v, ok := meta[k]; ok {
					fields = append(fields, kv(k, v))
				}
			}
			for _, k := range sortedKeys(meta) {
				switch k {
				case "sql_state", "error_code", "server":
				default:
					fields = append(fields, kv(k, meta[k]))
				}
			}
		case error: // a detail type this binary does not know
			fields = append(fields, kv("detail", d.Error()))
		default:
			fields = append(fields, kv("detail", fmt.Sprint(d)))
		}
	}
	fmt.Fprintf(w, "  %s\n", strings.Join(fields, " "))
}

func kv(k, v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) }) {
		v = strconv.Quote(v)
	}
	return k + "=" + v
}

// codeName is the canonical UPPER_SNAKE name of a gRPC code
// (DEADLINE_EXCEEDED), as the gRPC spec and other tools spell it.
func codeName(c codes.Code) string {
	name := c.String()
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

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

// progressPrinter shows state changes and whole-percent progress steps on
// stderr, beeline-style ("INFO  : ...").
type progressPrinter struct {
	w     io.Writer
	on    bool
	state hiveqv1.QueryState
	pct   int
}

func (p *progressPrinter) status(s *hiveqv1.QueryStatus) {
	if !p.on {
		return
	}
	pct := -1
	if s.GetProgress() >= 0 {
		pct = int(s.GetProgress()*100 + 1e-9)
	}
	if s.GetState() == p.state {
		if pct >= 0 && pct != p.pct {
			fmt.Fprintf(p.w, "INFO  : query %s %s %d%%\n", s.GetQueryId(), stateName(s.GetState()), pct)
			p.pct = pct
		}
		return
	}
	p.state, p.pct = s.GetState(), pct
	var b strings.Builder
	fmt.Fprintf(&b, "INFO  : query %s %s", s.GetQueryId(), stateName(s.GetState()))
	if s.GetServer() != "" {
		fmt.Fprintf(&b, " on %s (connector %s, epoch %d, replica %s)", s.GetServer(), s.GetConnector(), s.GetEpoch(), s.GetReplicaId())
	}
	if pct >= 0 {
		fmt.Fprintf(&b, " %d%%", pct)
	}
	switch s.GetState() {
	case hiveqv1.QueryState_QUERY_STATE_FINISHED, hiveqv1.QueryState_QUERY_STATE_FAILED, hiveqv1.QueryState_QUERY_STATE_CANCELED:
		fmt.Fprintf(&b, ", %s", plural(s.GetRows(), "row"))
		if d := s.GetElapsed(); d != nil {
			fmt.Fprintf(&b, " in %.3f s", d.AsDuration().Seconds())
		}
	}
	if m := s.GetMessage(); m != "" {
		fmt.Fprintf(&b, ": %s", m)
	}
	fmt.Fprintln(p.w, b.String())
}

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

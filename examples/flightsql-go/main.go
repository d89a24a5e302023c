// Command flightsql-go queries hiveqd's Arrow Flight SQL port with the
// ADBC Flight SQL driver and prints the result as tab-separated text,
// a header of column names and Arrow types first:
//
//	go run ./examples/flightsql-go -addr 127.0.0.1:9091 -token "$TOKEN" \
//	    "SELECT * FROM default.employees"
//
// With -user and -token the driver authenticates by Flight's Basic
// handshake (the token is the password), as JDBC and ODBC tools do;
// with -token alone it sends "authorization: Bearer TOKEN".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/driver/flightsql"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flightsql-go", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9091", "hiveqd's Flight SQL address (--flightsql-listen)")
	token := fs.String("token", os.Getenv("HIVEQD_TOKEN"), "bearer token (default $HIVEQD_TOKEN)")
	user := fs.String("user", "", "user name for the Basic handshake (with -token as the password)")
	tls := fs.Bool("tls", false, "connect with TLS (grpc+tls://)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: flightsql-go [-addr host:port] [-token T] [-user U] [-tls] STATEMENT")
		return 2
	}
	if err := query(ctx, *addr, *token, *user, *tls, fs.Arg(0), stdout); err != nil {
		fmt.Fprintln(stderr, "flightsql-go:", err)
		return 1
	}
	return 0
}

func query(ctx context.Context, addr, token, user string, useTLS bool, stmt string, out io.Writer) error {
	scheme := "grpc://"
	if useTLS {
		scheme = "grpc+tls://"
	}
	opts := map[string]string{adbc.OptionKeyURI: scheme + addr}
	switch {
	case user != "":
		opts[adbc.OptionKeyUsername], opts[adbc.OptionKeyPassword] = user, token
	case token != "":
		opts[flightsql.OptionAuthorizationHeader] = "Bearer " + token
	}
	db, err := flightsql.NewDriver(memory.DefaultAllocator).NewDatabase(opts)
	if err != nil {
		return err
	}
	defer db.Close()
	cn, err := db.Open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	st, err := cn.NewStatement()
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SetSqlQuery(stmt); err != nil {
		return err
	}
	rdr, _, err := st.ExecuteQuery(ctx)
	if err != nil {
		return err
	}
	defer rdr.Release()
	var head []string
	for _, f := range rdr.Schema().Fields() {
		head = append(head, f.Name+":"+f.Type.String())
	}
	fmt.Fprintln(out, strings.Join(head, "\t"))
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				row[j] = col.ValueStr(i)
			}
			fmt.Fprintln(out, strings.Join(row, "\t"))
		}
	}
	return rdr.Err()
}

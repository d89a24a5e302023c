package main

import (
	"context"
	"fmt"
	"io"
)

// sql is wired to the sqlcli package once it lands.
func sql(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "hiveqd sql: not built yet")
	return 2
}

package sqlcli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	hiveqv1 "github.com/hiveqd/hiveqd/gen/hiveq/v1"
)

// TestLiveProgressLine: state, server, elapsed; percent while running;
// rows and rows/s while streaming; erased by clear and close.
func TestLiveProgressLine(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	var out bytes.Buffer
	p := newLiveProgress(&out, func() time.Time { return now }, start, time.Hour)
	now = start.Add(1200 * time.Millisecond)
	p.status(&hiveqv1.QueryStatus{State: hiveqv1.QueryState_QUERY_STATE_RUNNING, Server: "hs2-a:10000", Progress: 0.25})
	if got, want := out.String(), "\rRUNNING on hs2-a:10000  1.2s  25%\x1b[K"; got != want {
		t.Errorf("running: %q, want %q", got, want)
	}
	p.status(&hiveqv1.QueryStatus{State: hiveqv1.QueryState_QUERY_STATE_STREAMING, Progress: 1})
	p.rows(100)
	now = start.Add(3200 * time.Millisecond)
	p.rows(4100)
	out.Reset()
	p.mu.Lock()
	p.draw()
	p.mu.Unlock()
	if got, want := out.String(), "\rSTREAMING on hs2-a:10000  3.2s  4100 rows  2050 rows/s\x1b[K"; got != want {
		t.Errorf("streaming: %q, want %q", got, want)
	}
	out.Reset()
	p.clear()
	p.clear() // once is enough
	if got := out.String(); got != "\r\x1b[K" {
		t.Errorf("clear: %q", got)
	}
	p.mu.Lock()
	p.draw()
	p.mu.Unlock()
	out.Reset()
	p.close()
	p.close()
	if got := out.String(); got != "\r\x1b[K" {
		t.Errorf("close: %q", got)
	}
	p.status(&hiveqv1.QueryStatus{State: hiveqv1.QueryState_QUERY_STATE_FINISHED})
	if strings.Contains(out.String(), "FINISHED") {
		t.Error("drew after close")
	}
}

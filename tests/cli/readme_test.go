package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/internal/testenv"
	"github.com/hiveqd/hiveqd/tests/harness"
)

// example is one "$ command" of a README console block and the output
// shown under it.
type example struct {
	command string
	output  []string
}

// readmeExamples returns the console examples of the README's "Try it"
// section.
func readmeExamples(t *testing.T) []example {
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Try it\n")
	if start < 0 {
		t.Fatal("README has no Try it section")
	}
	text = text[start:]
	text = text[:strings.Index(text[1:], "\n## ")+1]
	var out []example
	for _, block := range regexp.MustCompile("(?s)```console\n(.*?)```").FindAllStringSubmatch(text, -1) {
		lines := strings.Split(strings.TrimSuffix(block[1], "\n"), "\n")
		for i := 0; i < len(lines); i++ {
			cmd, ok := strings.CutPrefix(lines[i], "$ ")
			if !ok {
				if len(out) > 0 {
					ex := &out[len(out)-1]
					ex.output = append(ex.output, lines[i])
				}
				continue
			}
			for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, `\`) + strings.TrimSpace(lines[i])
			}
			out = append(out, example{command: cmd})
		}
	}
	if len(out) < 5 {
		t.Fatalf("only %d examples found in the README's Try it section", len(out))
	}
	return out
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d+\.\d+ seconds`), "N seconds"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "HOST:PORT"},
	{regexp.MustCompile(`query_id=\S+`), "query_id=ID"},
}

func normalize(lines []string) string {
	s := strings.TrimRight(strings.ReplaceAll(strings.Join(lines, "\n"), "\r\n", "\n"), "\n")
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// TestREADMEExamples runs the README's examples against hiveqd dev:
// hiveqd sql examples must print what the README shows (times, ports and
// ids aside); grpcurl examples (when grpcurl is installed) must show the
// same messages, in the same order.
func TestREADMEExamples(t *testing.T) {
	examples := readmeExamples(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dev, err := harness.Start("hiveqd-dev", bins["hiveqd"], []string{"dev", "--listen", addr}, nil, filepath.Join(t.TempDir(), "dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Stop(10 * time.Second) })
	if _, err := dev.WaitLine(ctx, regexp.MustCompile(`hiveqd listening on`)); err != nil {
		t.Fatal(err)
	}
	grpcurl, _ := exec.LookPath(filepath.Join(harness.RepoRoot(), ".tools", "bin", "grpcurl"))
	if grpcurl == "" {
		grpcurl, _ = exec.LookPath("grpcurl")
	}
	path := filepath.Dir(bins["hiveqd"]) + string(os.PathListSeparator) + os.Getenv("PATH")
	ran := 0
	for _, ex := range examples {
		cmd := strings.ReplaceAll(ex.command, "localhost:9090", addr)
		switch {
		case strings.HasPrefix(cmd, "grpcurl "):
			if grpcurl == "" {
				t.Logf("skipped (no grpcurl): %s", ex.command)
				continue
			}
			cmd = shellQuote(grpcurl) + strings.TrimPrefix(cmd, "grpcurl")
		case !strings.Contains(cmd, "hiveqd "):
			t.Fatalf("README example runs neither hiveqd nor grpcurl: %s", ex.command)
		}
		got := runShell(t, cmd, path, addr)
		ran++
		if strings.Contains(cmd, "grpcurl") {
			compareGrpcurl(t, ex, got)
			continue
		}
		if want, got := normalize(ex.output), normalize(strings.Split(got, "\n")); got != want {
			t.Errorf("README example %s\nprints:\n%s\nREADME shows:\n%s\n(%q)", ex.command, got, want, got)
		}
	}
	t.Logf("ran %d of %d README examples", ran, len(examples))
}

func runShell(t *testing.T, cmd, path, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", "{ "+cmd+"\n} 2>&1")
	c.Env = append(os.Environ(), "PATH="+path, "HIVEQD_ADDR="+addr)
	c.Stdin = nil
	out, _ := c.Output() // the examples show failures too
	return string(out)
}

// compareGrpcurl compares the kinds of messages: the README abridges
// grpcurl's multi-line JSON.
func compareGrpcurl(t *testing.T, ex example, got string) {
	t.Helper()
	var wantKinds, gotKinds []string
	abridged := false // a line "…" stands for messages left out
	kind := regexp.MustCompile(`^\{ "(\w+)"`)
	for _, l := range ex.output {
		if l == "…" {
			abridged = len(wantKinds) == 0
			continue
		}
		if m := kind.FindStringSubmatch(l); m != nil {
			wantKinds = append(wantKinds, m[1])
		} else if strings.HasPrefix(strings.TrimSpace(l), "Code: ") || !strings.ContainsAny(l, " {}:…") && l != "" {
			wantKinds = append(wantKinds, strings.TrimSpace(l))
		}
	}
	dec := json.NewDecoder(strings.NewReader(got))
	for {
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); err != nil {
			rest, _ := io.ReadAll(dec.Buffered())
			for _, l := range strings.Split(string(rest), "\n") {
				if l = strings.TrimSpace(l); strings.HasPrefix(l, "Code: ") || l != "" && !strings.ContainsAny(l, " {}:") {
					gotKinds = append(gotKinds, l)
				}
			}
			break
		}
		for k := range m {
			gotKinds = append(gotKinds, k)
		}
	}
	if abridged && len(gotKinds) > len(wantKinds) {
		gotKinds = gotKinds[len(gotKinds)-len(wantKinds):]
	}
	if strings.Join(gotKinds, ",") != strings.Join(wantKinds, ",") {
		t.Errorf("README example %s\nshows %q\nbut grpcurl printed %q:\n%s", ex.command, wantKinds, gotKinds, got)
	}
}

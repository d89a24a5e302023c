package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEExample keeps the README's field-by-field YAML reference true:
// it must parse strictly and validate.
func TestREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "### The YAML file, field by field")
	if i < 0 {
		t.Fatal("README has no YAML reference section")
	}
	doc = doc[i:]
	start := strings.Index(doc, "```yaml\n")
	end := strings.Index(doc[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README's YAML reference has no yaml block")
	}
	cfg, err := Parse([]byte(doc[start+8 : start+8+end]))
	if err != nil {
		t.Fatalf("README YAML: %v", err)
	}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("README YAML does not validate: %v", err)
	}
}

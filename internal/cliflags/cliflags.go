// Package cliflags is what hiveqd's subcommands share about flags: the
// wording of a bad flag, and help that lists each flag with its type,
// default and environment variable, grouped by concern.
package cliflags

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Error rewords the flag package's errors to name the flag as it is
// typed: "unknown flag --frob", "flag --addr needs a value".
func Error(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag %s", dashed(strings.TrimLeft(name, "-")))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("flag %s needs a value", dashed(strings.TrimLeft(name, "-")))
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if i := strings.Index(rest, " for flag -"); i >= 0 {
			name, tail, _ := strings.Cut(rest[i+len(" for flag -"):], ":")
			return errors.New("invalid value " + rest[:i] + " for flag " + dashed(name) + ":" + tail)
		}
	}
	return err
}

// dashed is how help spells a flag: -e, --addr.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// Doc is one flag as help shows it.
type Doc struct {
	Name, Type, Default, Env, Usage, Group string
}

// Print writes docs grouped (groups in order of first appearance),
// aligned, one line a flag.
func Print(w io.Writer, docs []Doc) {
	var groups []string
	byGroup := map[string][]Doc{}
	for _, d := range docs {
		if _, ok := byGroup[d.Group]; !ok {
			groups = append(groups, d.Group)
		}
		byGroup[d.Group] = append(byGroup[d.Group], d)
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, d := range byGroup[g] {
			var extra []string
			if d.Default != "" {
				extra = append(extra, "default "+d.Default)
			}
			if d.Env != "" {
				extra = append(extra, "env "+d.Env)
			}
			usage := d.Usage
			if len(extra) > 0 {
				usage += " [" + strings.Join(extra, "; ") + "]"
			}
			name := dashed(d.Name)
			if d.Type != "" {
				name += " " + d.Type
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
		}
		tw.Flush()
	}
}

// FromFlagSet documents fs's flags from the flags themselves (type from
// the value, default from DefValue), in fs's order (alphabetical); group
// names each flag's group ("" → "Flags").
func FromFlagSet(fs *flag.FlagSet, group func(name string) string) []Doc {
	var docs []Doc
	fs.VisitAll(func(f *flag.Flag) {
		docs = append(docs, FromFlag(f, group(f.Name)))
	})
	return docs
}

// FromFlag documents one flag.
func FromFlag(f *flag.Flag, group string) Doc {
	typ, usage := flag.UnquoteUsage(f)
	switch {
	case isBool(f):
		typ = "" // takes no value
	case typ == "value":
		typ = "key=value"
	}
	def := f.DefValue
	if def == "false" || def == "0" || def == "0s" || def == "[]" {
		def = ""
	}
	if g, ok := f.Value.(flag.Getter); ok && def != "" {
		if _, isString := g.Get().(string); isString {
			def = fmt.Sprintf("%q", def)
		}
	}
	if group == "" {
		group = "Flags"
	}
	return Doc{Name: f.Name, Type: typ, Default: def, Usage: usage, Group: group}
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/internal/cliflags"
)

// parseFlags parses a subcommand's flags the same way for every
// subcommand: -h/--help prints help on stdout (exit 0); a bad flag is one
// line on stderr naming it, with a pointer to --help (exit 2). ok is false
// when the command should return code.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, help func(io.Writer)) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		help(stdout)
		return 0, false
	case err != nil:
		return usageLine(stderr, fs.Name(), cliflags.Error(err).Error()), false
	}
	return 0, true
}

// usageLine prints a usage problem as one line and returns exit code 2.
func usageLine(w io.Writer, cmd, msg string) int {
	fmt.Fprintf(w, "%s: %s (see '%s --help')\n", cmd, msg, cmd)
	return 2
}

// serveDocs documents serve's flags. Those that are config.Settings (all
// but --config) are found in the configuration mechanically: the setting
// is applied to a default configuration, and the field it changes gives
// the flag's type, its default, and its group (the top-level section of
// the configuration). A new setting therefore shows up correctly without
// touching this file.
func serveDocs(fs *flag.FlagSet) []cliflags.Doc {
	settings := map[string]config.Setting{}
	for _, s := range config.Settings {
		settings[s.Flag] = s
	}
	var docs []cliflags.Doc
	fs.VisitAll(func(f *flag.Flag) {
		s, ok := settings[f.Name]
		if !ok {
			docs = append(docs, cliflags.FromFlag(f, "General"))
			return
		}
		typ, def, group := describeSetting(s)
		docs = append(docs, cliflags.Doc{Name: f.Name, Type: typ, Default: def, Env: s.Env(), Usage: s.Usage, Group: group})
	})
	// VisitAll is alphabetical; help follows config.Settings' order, with
	// the flags that are not settings first.
	order := map[string]int{}
	for i, s := range config.Settings {
		order[s.Flag] = i + 1
	}
	slices.SortStableFunc(docs, func(a, b cliflags.Doc) int { return order[a.Name] - order[b.Name] })
	return docs
}

// settingBase is the configuration settings are applied to: the defaults,
// with the connector the --hs2/--zk flags configure already present and
// filled with connector defaults.
func settingBase() config.Config {
	c := config.Default()
	c.DefaultConnector = "hive"
	c.Connectors = []config.Connector{{Name: "hive"}}
	config.ConnectorDefaults(&c.Connectors[0])
	return c
}

// settingProbes are values tried until one applies; each parses as some
// field type (string, integer, duration, boolean).
var settingProbes = []string{"probe-value", "7", "7s", "true"}

// enumValue is the first value of a usage that lists them: "a | b | c".
var enumValue = regexp.MustCompile(`([\w.-]+) \|`)

// groupTitles name the configuration's top-level sections; a section
// not listed here is titled by its field name.
var groupTitles = map[string]string{
	"Listen": "Server", "MetricsListen": "Server", "ReplicaID": "Server", "AdvertiseAddr": "Server", "ShutdownGrace": "Server",
	"Cluster": "Coordination", "Coordination": "Coordination", "Etcd": "Coordination",
	"DefaultConnector": "HiveServer2 connector", "Connectors": "HiveServer2 connector",
	"Limits": "Limits", "Security": "Security (gRPC TLS and authentication)", "Log": "Logging", "Tracing": "Tracing",
}

// describeSetting finds the field s sets: its type, its default ("" when
// unset) and its group.
func describeSetting(s config.Setting) (typ, def, group string) {
	base := settingBase()
	probes := settingProbes
	if m := enumValue.FindStringSubmatch(s.Usage); m != nil {
		probes = append(probes[:len(probes):len(probes)], m[1]) // a setting that accepts only listed values
	}
	for _, probe := range probes {
		c := settingBase()
		if s.Apply(&c, probe) != nil {
			continue
		}
		var changes []fieldChange
		diffFields(reflect.ValueOf(base), reflect.ValueOf(c), nil, &changes)
		if len(changes) == 0 {
			continue
		}
		ch := changes[0]
		for _, x := range changes { // the field that took the value
			if strings.Contains(strings.ToLower(fmt.Sprint(x.after.Interface())), probe) {
				ch = x
				break
			}
		}
		group = groupTitles[ch.path[0]]
		if group == "" {
			group = ch.path[0]
		}
		def := ch.before
		if ch.path[0] != "Connectors" { // the base's connector is not a default
			def = reflect.ValueOf(config.Default()).FieldByName(ch.path[0])
			for _, name := range ch.path[1:] {
				def = def.FieldByName(name)
			}
		}
		return typeName(ch.before.Type()), defaultText(def), group
	}
	return "string", "", groupByName(s.Flag)
}

// groupByName groups a setting that no probe value applies to (it checks
// files, say) by its flag's name.
func groupByName(flag string) string {
	for _, g := range []struct{ prefix, group string }{
		{"hs2-", "HiveServer2 connector"}, {"zk", "HiveServer2 connector"}, {"etcd", "Coordination"},
		{"tls-", "Security (gRPC TLS and authentication)"}, {"auth-", "Security (gRPC TLS and authentication)"},
		{"kerberos-", "Kerberos"}, {"krb5-", "Kerberos"}, {"log-", "Logging"}, {"trace-", "Tracing"},
	} {
		if strings.HasPrefix(flag, g.prefix) {
			return g.group
		}
	}
	if strings.HasSuffix(flag, "-listen") || flag == "listen" {
		return "Server"
	}
	return "Other"
}

type fieldChange struct {
	path          []string
	before, after reflect.Value
}

// diffFields appends the leaf fields that differ between a and b.
func diffFields(a, b reflect.Value, path []string, out *[]fieldChange) {
	if a.Type() == reflect.TypeFor[time.Duration]() || a.Kind() != reflect.Struct && a.Kind() != reflect.Slice && a.Kind() != reflect.Pointer {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fieldChange{path, a, b})
		}
		return
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			diffFields(a.Field(i), b.Field(i), append(path[:len(path):len(path)], a.Type().Field(i).Name), out)
		}
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Struct && a.Len() == b.Len() {
			for i := 0; i < a.Len(); i++ {
				diffFields(a.Index(i), b.Index(i), path, out)
			}
			return
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fieldChange{path, a, b})
		}
	case reflect.Pointer:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fieldChange{path, a, b})
		}
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Pointer:
		return typeName(t.Elem())
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "float"
	}
	return t.Kind().String()
}

func defaultText(v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []string:
		return fmt.Sprintf("%q", strings.Join(x, ","))
	case *bool:
		return fmt.Sprint(*x)
	}
	return fmt.Sprint(v.Interface())
}

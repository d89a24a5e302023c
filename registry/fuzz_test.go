package registry

import (
	"strings"
	"testing"
)

func FuzzParseNodeName(f *testing.F) {
	for _, s := range []string{
		"serverUri=hs2-a.example.com:10000;version=3.1.3;sequence=0000000012",
		"serverUri=[::1]:10000;version=3.1.3;sequence=0000000001",
		"serverUri=0:0:0:0:0:0:0:1:10000;version=3.1.3;sequence=0000000001",
		"sequence=0000000003;serverUri=h:1;extra=x",
		"serverUri=h:10000;version=3.1.3;sequence=",
		"instance-0000000001",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := ParseNodeName(name)
		if err != nil {
			return
		}
		if n.Host == "" || n.Port <= 0 || n.Port > 65535 || n.Seq < 0 {
			t.Fatalf("accepted %q as %+v", name, n)
		}
		if strings.ContainsAny(n.Host, "; =/") || strings.Contains(n.Version, ";") {
			t.Fatalf("accepted %q as %+v", name, n)
		}
		again, err := ParseNodeName(n.String())
		if err != nil || again != n {
			t.Fatalf("round trip of %q via %q: %+v, %v", name, n.String(), again, err)
		}
	})
}

func FuzzParseNodeData(f *testing.F) {
	for _, s := range []string{
		"hive.server2.instance.uri=h:10000;hive.server2.authentication=NONE;hive.server2.transport.mode=binary;hive.server2.thrift.sasl.qop=auth;hive.server2.thrift.bind.host=h;hive.server2.thrift.port=10000;hive.server2.use.SSL=false",
		"hive.server2.thrift.bind.host=b;hive.server2.thrift.http.port=10001;hive.server2.thrift.http.path=cliservice;hive.server2.transport.mode=http",
		"h:10000",
		"a=1;;junk;=x;b=c=d;",
		"hive.server2.transport.mode=all;hive.server2.thrift.port=1;hive.server2.thrift.http.port=2",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kv, err := ParseNodeData(data)
		if err != nil {
			return
		}
		if len(kv) == 0 {
			t.Fatalf("%q: empty map without error", data)
		}
		for k, v := range kv {
			if k == "" || strings.ContainsAny(k, "=;") || strings.Contains(v, ";") {
				t.Fatalf("%q: bad pair %q=%q", data, k, v)
			}
		}
		// Whatever parses must either build an endpoint or fail cleanly.
		ep, err := endpointFromData(kv, "fallback", 10000, false, EndpointOverrides{})
		if err == nil && (ep.Host == "" || ep.Port <= 0 || ep.Port > 65535 || ep.Transport == "") {
			t.Fatalf("%q: bad endpoint %+v", data, ep)
		}
	})
}

func FuzzParseServiceRecord(f *testing.F) {
	f.Add([]byte(haRecord("activeEndpoint", "llap-a", "10500", "u-1")))
	f.Add([]byte(haRecord("passiveEndpoint", "llap-b", "10501", "u-2")))
	f.Add([]byte(`{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[["h","10000"]]}]}`))
	f.Add([]byte(`{"type":"JSONServiceRecord","internal":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseServiceRecord(data)
		if err != nil {
			return
		}
		if rec.Host == "" || rec.Port <= 0 || rec.Port > 65535 {
			t.Fatalf("%q: bad record %+v", data, rec)
		}
	})
}

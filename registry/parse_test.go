package registry

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hiveqd/hiveqd/hs2"
)

func TestParseNodeName(t *testing.T) {
	tests := []struct {
		name    string
		want    NodeName
		wantErr string
	}{
		{name: "serverUri=hs2-a.example.com:10000;version=3.1.3;sequence=0000000012",
			want: NodeName{Host: "hs2-a.example.com", Port: 10000, Version: "3.1.3", Seq: 12}},
		{name: "serverUri=10.0.0.7:10001;version=4.0.0-alpha-2;sequence=0000000000",
			want: NodeName{Host: "10.0.0.7", Port: 10001, Version: "4.0.0-alpha-2", Seq: 0}},
		// CDP/HDP versions carry build numbers.
		{name: "serverUri=h:10000;version=3.1.3000.7.1.7.0-551;sequence=2147483647",
			want: NodeName{Host: "h", Port: 10000, Version: "3.1.3000.7.1.7.0-551", Seq: 2147483647}},
		{name: "serverUri=[::1]:10000;version=3.1.3;sequence=0000000001",
			want: NodeName{Host: "::1", Port: 10000, Version: "3.1.3", Seq: 1}},
		// HS2 joins host and port with a bare ':' even for IPv6.
		{name: "serverUri=0:0:0:0:0:0:0:1:10000;version=3.1.3;sequence=0000000001",
			want: NodeName{Host: "0:0:0:0:0:0:0:1", Port: 10000, Version: "3.1.3", Seq: 1}},
		// Order does not matter; unknown keys are ignored; no version is fine.
		{name: "sequence=0000000003;serverUri=h:1;extra=x",
			want: NodeName{Host: "h", Port: 1, Seq: 3}},
		{name: "serverUri=h:10000;version=3.1.3;sequence=", wantErr: "bad sequence"},
		{name: "serverUri=h:10000;version=3.1.3;sequence=-000000001", wantErr: "bad sequence"},
		{name: "serverUri=h:10000;version=3.1.3;sequence=00000x0001", wantErr: "bad sequence"},
		{name: "serverUri=h:10000;version=3.1.3", wantErr: "no sequence"},
		{name: "version=3.1.3;sequence=0000000001", wantErr: "no serverUri"},
		{name: "serverUri=h;version=3.1.3;sequence=0000000001", wantErr: "bad host:port"},
		{name: "serverUri=h:0;sequence=0000000001", wantErr: "bad port"},
		{name: "serverUri=h:65536;sequence=0000000001", wantErr: "bad port"},
		{name: "serverUri=:10000;sequence=0000000001", wantErr: "empty host"},
		{name: "serverUri=h h:10000;sequence=0000000001", wantErr: "bad host"},
		{name: "garbage", wantErr: "not key=value"},
		{name: "", wantErr: "no serverUri"},
		{name: "instance-0000000001", wantErr: "not key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNodeName(tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseNodeName(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseNodeData(t *testing.T) {
	tests := []struct {
		data    string
		want    map[string]string
		wantErr string
	}{
		{data: "hive.server2.instance.uri=h:10000;hive.server2.authentication=NONE;hive.server2.transport.mode=binary;hive.server2.thrift.sasl.qop=auth;hive.server2.thrift.bind.host=h;hive.server2.thrift.port=10000;hive.server2.use.SSL=false",
			want: map[string]string{KeyInstanceURI: "h:10000", KeyAuth: "NONE", KeyTransportMode: "binary",
				"hive.server2.thrift.sasl.qop": "auth", KeyBindHost: "h", KeyThriftPort: "10000", KeyUseSSL: "false"}},
		{data: "h:10000", want: map[string]string{KeyInstanceURI: "h:10000"}},
		{data: "  h:10000\n", want: map[string]string{KeyInstanceURI: "h:10000"}},
		// Trailing ';', empty segments, segments without '=' and empty keys
		// are ignored, as Hive's JDBC regex does; '=' may appear in values.
		{data: "a=1;;junk;=x;b=c=d;", want: map[string]string{"a": "1", "b": "c=d"}},
		{data: "a=", want: map[string]string{"a": ""}},
		{data: "", wantErr: "empty"},
		{data: "   ", wantErr: "empty"},
		{data: "h", wantErr: "neither"},
		{data: "h:port", wantErr: "bad port"},
		{data: ";=;", wantErr: "no key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got, err := ParseNodeData([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEndpointFromData(t *testing.T) {
	yes := true
	tests := []struct {
		name     string
		data     string
		host     string
		port     int
		addrWins bool
		ov       EndpointOverrides
		want     hs2.Endpoint
		wantErr  string
	}{
		{name: "binary published",
			data: "hive.server2.thrift.bind.host=a.example;hive.server2.thrift.port=10000;hive.server2.transport.mode=binary;hive.server2.authentication=LDAP;hive.server2.use.SSL=true",
			host: "ignored", port: 1,
			want: hs2.Endpoint{Host: "a.example", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthLDAP, TLS: true}},
		{name: "http published",
			data: "hive.server2.thrift.bind.host=b;hive.server2.thrift.http.port=10001;hive.server2.thrift.http.path=/cliservice2;hive.server2.transport.mode=HTTP;hive.server2.authentication=NOSASL",
			host: "x", port: 1,
			want: hs2.Endpoint{Host: "b", Port: 10001, Transport: hs2.TransportHTTP, HTTPPath: "cliservice2", Auth: hs2.AuthNoSASL}},
		{name: "http default path",
			data: "hive.server2.thrift.bind.host=b;hive.server2.thrift.http.port=10001;hive.server2.transport.mode=http",
			want: hs2.Endpoint{Host: "b", Port: 10001, Transport: hs2.TransportHTTP, HTTPPath: "cliservice", Auth: hs2.AuthNone}},
		{name: "all mode is binary on thrift.port",
			data: "hive.server2.thrift.bind.host=c;hive.server2.thrift.port=10000;hive.server2.thrift.http.port=10001;hive.server2.thrift.http.path=cliservice;hive.server2.transport.mode=all",
			want: hs2.Endpoint{Host: "c", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}},
		{name: "all mode forced to http",
			data: "hive.server2.thrift.bind.host=c;hive.server2.thrift.port=10000;hive.server2.thrift.http.port=10001;hive.server2.thrift.http.path=cliservice;hive.server2.transport.mode=all",
			ov:   EndpointOverrides{Transport: hs2.TransportHTTP, HTTPPath: "/other", TLS: &yes, Auth: "custom"},
			want: hs2.Endpoint{Host: "c", Port: 10001, Transport: hs2.TransportHTTP, HTTPPath: "other", Auth: hs2.AuthCustom, TLS: true}},
		{name: "bare host:port data",
			data: "d:10005", host: "d", port: 10005,
			want: hs2.Endpoint{Host: "d", Port: 10005, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}},
		{name: "instance uri before the name",
			data: "hive.server2.instance.uri=e:10007", host: "x", port: 1,
			want: hs2.Endpoint{Host: "e", Port: 10007, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}},
		{name: "name when nothing is published",
			data: "hive.server2.authentication=NONE", host: "f", port: 10008,
			want: hs2.Endpoint{Host: "f", Port: 10008, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}},
		{name: "service record address wins",
			data: "hive.server2.thrift.bind.host=other;hive.server2.thrift.port=1;hive.server2.transport.mode=binary",
			host: "g", port: 10500, addrWins: true,
			want: hs2.Endpoint{Host: "g", Port: 10500, Transport: hs2.TransportBinary, Auth: hs2.AuthNone}},
		{name: "kerberos with its principal",
			data: "hive.server2.thrift.bind.host=k;hive.server2.thrift.port=10000;hive.server2.authentication=KERBEROS;hive.server2.authentication.kerberos.principal=hive/_HOST@EXAMPLE.COM",
			want: hs2.Endpoint{Host: "k", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthKerberos, Principal: "hive/_HOST@EXAMPLE.COM"}},
		{name: "kerberos with qop",
			data: "hive.server2.thrift.bind.host=k;hive.server2.thrift.port=10000;hive.server2.authentication=KERBEROS;hive.server2.authentication.kerberos.principal=hive/_HOST@EXAMPLE.COM;hive.server2.thrift.sasl.qop=auth-conf",
			want: hs2.Endpoint{Host: "k", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthKerberos, Principal: "hive/_HOST@EXAMPLE.COM", SASLQOP: "auth-conf"}},
		{name: "PAM speaks like LDAP",
			data: "hive.server2.thrift.bind.host=p;hive.server2.thrift.port=10000;hive.server2.authentication=PAM",
			want: hs2.Endpoint{Host: "p", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthLDAP}},
		{name: "auth list picks a usable mode",
			data: "hive.server2.thrift.bind.host=p;hive.server2.thrift.port=10000;hive.server2.authentication=SAML,ldap",
			want: hs2.Endpoint{Host: "p", Port: 10000, Transport: hs2.TransportBinary, Auth: hs2.AuthLDAP}},
		{name: "unknown transport", data: "hive.server2.transport.mode=carrier-pigeon;hive.server2.thrift.port=1", host: "h", wantErr: "unknown"},
		{name: "bad port", data: "hive.server2.thrift.bind.host=h;hive.server2.thrift.port=ten", wantErr: "bad port"},
		{name: "no port", data: "hive.server2.thrift.bind.host=h", wantErr: "no port"},
		{name: "no host", data: "hive.server2.thrift.port=10000", wantErr: "empty host"},
		{name: "bad instance uri", data: "hive.server2.instance.uri=nope;hive.server2.thrift.port=1", host: "h", wantErr: KeyInstanceURI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv, err := ParseNodeData([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := endpointFromData(kv, tt.host, tt.port, tt.addrWins, tt.ov)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// haRecord is a service record as HS2ActivePassiveHARegistry serializes it
// (Hadoop's ServiceRecord through Jackson: attributes at the top level).
func haRecord(api, host, port, uid string) string {
	return `{
  "type" : "JSONServiceRecord",
  "external" : [ ],
  "internal" : [ {
    "api" : "` + api + `",
    "addressType" : "host/port",
    "protocolType" : "hadoop/IPC",
    "addresses" : [ {
      "host" : "` + host + `",
      "port" : "` + port + `"
    } ]
  } ],
  "hive.server2.thrift.bind.host" : "` + host + `",
  "hive.server2.webui.port" : "10502",
  "hive.server2.instance.uri" : "` + host + `:` + port + `",
  "registry.unique.id" : "` + uid + `",
  "hive.server2.transport.mode" : "binary",
  "hive.server2.thrift.port" : "` + port + `",
  "hive.server2.thrift.sasl.qop" : "auth",
  "hive.server2.authentication" : "NONE",
  "hive.server2.use.SSL" : "false"
}`
}

func TestParseServiceRecord(t *testing.T) {
	rec, err := parseServiceRecord([]byte(haRecord("activeEndpoint", "llap-a", "10500", "u-1")))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Host != "llap-a" || rec.Port != 10500 || !rec.Active || rec.UniqueID != "u-1" || rec.Attrs[KeyTransportMode] != "binary" {
		t.Fatalf("got %+v", rec)
	}
	rec, err = parseServiceRecord([]byte(haRecord("passiveEndpoint", "llap-b", "10501", "u-2")))
	if err != nil || rec.Active || rec.Port != 10501 {
		t.Fatalf("passive: %+v %v", rec, err)
	}
	// Hadoop 2.6 wrote addresses as tuples.
	old := `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[["h","10000"]]}],"registry.unique.id":"x"}`
	if rec, err := parseServiceRecord([]byte(old)); err != nil || rec.Host != "h" || rec.Port != 10000 {
		t.Fatalf("tuple: %+v %v", rec, err)
	}
	bad := map[string]string{
		"not json":      `{`,
		"no type":       `{"internal":[{"api":"activeEndpoint","addresses":[{"host":"h","port":"1"}]}]}`,
		"wrong type":    `{"type":"x","internal":[{"api":"activeEndpoint","addresses":[{"host":"h","port":"1"}]}]}`,
		"no endpoint":   `{"type":"JSONServiceRecord","internal":[]}`,
		"both":          `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[{"host":"h","port":"1"}]},{"api":"passiveEndpoint","addresses":[{"host":"h","port":"1"}]}]}`,
		"no address":    `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[]}]}`,
		"bad port":      `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[{"host":"h","port":"x"}]}]}`,
		"bad internal":  `{"type":"JSONServiceRecord","internal":{}}`,
		"empty host":    `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[{"port":"1"}]}]}`,
		"address shape": `{"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint","addresses":[7]}]}`,
	}
	for name, data := range bad {
		if _, err := parseServiceRecord([]byte(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLatchAndInstanceNames(t *testing.T) {
	if s, ok := latchSeq("_c_0d3c1a36-7b0a-4b8b-9f5e-2a1f0c9e1b7d-latch-0000000003"); !ok || s != 3 {
		t.Fatalf("protected latch: %d %v", s, ok)
	}
	if s, ok := latchSeq("latch-0000000010"); !ok || s != 10 {
		t.Fatalf("latch: %d %v", s, ok)
	}
	if _, ok := latchSeq("lock-0000000001"); ok {
		t.Fatal("not a latch")
	}
	if s, err := parseInstanceSeq("instance-0000000007"); err != nil || s != 7 {
		t.Fatalf("instance: %d %v", s, err)
	}
	if _, err := parseInstanceSeq("instance-"); err == nil {
		t.Fatal("empty sequence accepted")
	}
}

func TestZKRequiresSASL(t *testing.T) {
	if !zkRequiresSASL(fmt.Errorf("children of /hs2: %w", errors.New("unknown error: -124"))) {
		t.Error("SESSIONCLOSEDREQUIRESASLAUTH not recognised")
	}
	if zkRequiresSASL(errors.New("zk: not authenticated")) || zkRequiresSASL(nil) {
		t.Error("other errors taken for a SASL requirement")
	}
	if !strings.Contains(errZKSASL.Error(), "world-readable") {
		t.Error(errZKSASL)
	}
}

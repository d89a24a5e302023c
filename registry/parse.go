package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hiveqd/hiveqd/hs2"
)

// Keys HS2 publishes in its znode data (HiveServer2.addConfsToPublish) and in
// the attributes of its active/passive service record.
const (
	KeyTransportMode = "hive.server2.transport.mode"
	KeyAuth          = "hive.server2.authentication"
	KeyUseSSL        = "hive.server2.use.SSL"
	KeyThriftPort    = "hive.server2.thrift.port"
	KeyHTTPPort      = "hive.server2.thrift.http.port"
	KeyHTTPPath      = "hive.server2.thrift.http.path"
	KeyBindHost      = "hive.server2.thrift.bind.host"
	KeyInstanceURI   = "hive.server2.instance.uri"
	KeyPrincipal     = "hive.server2.authentication.kerberos.principal"
	KeySASLQOP       = "hive.server2.thrift.sasl.qop"
	// KeyUniqueID is the registry's instance id; the leader latch carries it.
	KeyUniqueID = "registry.unique.id"
)

// NodeName is a parsed plain-mode znode name:
// serverUri=host:port;version=v;sequence=n.
type NodeName struct {
	Host    string
	Port    int
	Version string
	Seq     int64
}

// String formats n the way HS2 names its znode.
func (n NodeName) String() string {
	return fmt.Sprintf("serverUri=%s;version=%s;sequence=%010d", joinHostPort(n.Host, n.Port), n.Version, n.Seq)
}

// ParseNodeName parses a znode name HS2 created under its namespace. The
// serverUri and the sequence ZooKeeper appended are required; unknown keys are
// ignored.
func ParseNodeName(name string) (NodeName, error) {
	var n NodeName
	var haveURI, haveSeq bool
	for _, part := range strings.Split(name, ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return NodeName{}, fmt.Errorf("znode name %q: segment %q is not key=value", name, part)
		}
		switch k {
		case "serverUri":
			h, p, err := splitHostPort(v)
			if err != nil {
				return NodeName{}, fmt.Errorf("znode name %q: serverUri: %w", name, err)
			}
			n.Host, n.Port, haveURI = h, p, true
		case "version":
			n.Version = v
		case "sequence":
			s, err := parseSeq(v)
			if err != nil {
				return NodeName{}, fmt.Errorf("znode name %q: %w", name, err)
			}
			n.Seq, haveSeq = s, true
		}
	}
	if !haveURI {
		return NodeName{}, fmt.Errorf("znode name %q: no serverUri", name)
	}
	if !haveSeq {
		return NodeName{}, fmt.Errorf("znode name %q: no sequence", name)
	}
	return n, nil
}

// parseSeq reads the counter ZooKeeper appends to a sequential znode
// (ten digits, zero-padded).
func parseSeq(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("bad sequence %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad sequence %q", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// ParseNodeData parses a plain-mode znode's data: HS2's published
// configuration "k=v;k=v;..." (hive.server2.zookeeper.publish.configs, the
// default), or just "host:port" as older HS2 and publish.configs=false write
// it, which comes back as {hive.server2.instance.uri: host:port}. Like Hive's
// JDBC driver, segments without '=' are ignored; keys and values are trimmed.
func ParseNodeData(data []byte) (map[string]string, error) {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, errors.New("empty znode data")
	}
	if !strings.Contains(s, "=") {
		if _, _, err := splitHostPort(s); err != nil {
			return nil, fmt.Errorf("znode data %q is neither k=v;... nor host:port: %w", truncate(s), err)
		}
		return map[string]string{KeyInstanceURI: s}, nil
	}
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			continue
		}
		kv[k] = v
	}
	if len(kv) == 0 {
		return nil, fmt.Errorf("znode data %q has no key=value pair", truncate(s))
	}
	return kv, nil
}

// EndpointOverrides are connector settings that win over what a server
// publishes (as a JDBC URL's transportMode/httpPath/ssl do over znode data).
type EndpointOverrides struct {
	Transport hs2.Transport // "" keeps the published transport mode
	Auth      hs2.Auth      // "" keeps the published authentication
	HTTPPath  string        // "" keeps the published path
	TLS       *bool         // nil keeps hive.server2.use.SSL
}

// endpointFromData builds an Endpoint from published configuration. host and
// port are the address the registration itself names (serverUri or the
// service record's endpoint); addrWins says whether they beat the published
// bind host and thrift port (true for service records, whose address is what
// Hive's own client uses).
func endpointFromData(kv map[string]string, host string, port int, addrWins bool, ov EndpointOverrides) (hs2.Endpoint, error) {
	var ep hs2.Endpoint
	mode := strings.ToLower(kv[KeyTransportMode])
	switch mode {
	case "", "binary", "all": // "all" serves both; binary is on thrift.port
		ep.Transport = hs2.TransportBinary
	case "http":
		ep.Transport = hs2.TransportHTTP
	default:
		return hs2.Endpoint{}, fmt.Errorf("unknown %s %q", KeyTransportMode, kv[KeyTransportMode])
	}
	if ov.Transport != "" {
		ep.Transport = ov.Transport
	}

	// Candidates for host and port, best first.
	var hosts []string
	var ports []string
	uriHost, uriPort := "", ""
	if u := kv[KeyInstanceURI]; u != "" {
		h, p, err := splitHostPort(u)
		if err != nil {
			return hs2.Endpoint{}, fmt.Errorf("%s: %w", KeyInstanceURI, err)
		}
		uriHost, uriPort = h, strconv.Itoa(p)
	}
	portKey := KeyThriftPort
	if ep.Transport == hs2.TransportHTTP {
		portKey = KeyHTTPPort
	}
	regPort := ""
	if port > 0 {
		regPort = strconv.Itoa(port)
	}
	if addrWins {
		hosts = []string{host, kv[KeyBindHost], uriHost}
		ports = []string{regPort, kv[portKey], uriPort}
	} else {
		hosts = []string{kv[KeyBindHost], uriHost, host}
		ports = []string{kv[portKey], uriPort, regPort}
	}
	for _, h := range hosts {
		if h != "" {
			ep.Host = h
			break
		}
	}
	if err := checkHost(ep.Host); err != nil {
		return hs2.Endpoint{}, err
	}
	for _, p := range ports {
		if p == "" {
			continue
		}
		n, err := parsePort(p)
		if err != nil {
			return hs2.Endpoint{}, err
		}
		ep.Port = n
		break
	}
	if ep.Port == 0 {
		return hs2.Endpoint{}, errors.New("no port published")
	}

	if ep.Transport == hs2.TransportHTTP {
		ep.HTTPPath = strings.TrimPrefix(kv[KeyHTTPPath], "/")
		if ov.HTTPPath != "" {
			ep.HTTPPath = strings.TrimPrefix(ov.HTTPPath, "/")
		}
		if ep.HTTPPath == "" {
			ep.HTTPPath = hs2.DefaultHTTPPath
		}
	}
	ep.Auth = normalizeAuth(kv[KeyAuth])
	if ov.Auth != "" {
		ep.Auth = hs2.Auth(strings.ToUpper(string(ov.Auth)))
	}
	ep.TLS = strings.EqualFold(kv[KeyUseSSL], "true")
	if ov.TLS != nil {
		ep.TLS = *ov.TLS
	}
	if ep.Auth == hs2.AuthKerberos {
		// The principal to build per host (hive/_HOST@REALM) and the QOP;
		// the connector's settings win at dial time (hs2.Kerberos).
		ep.Principal = kv[KeyPrincipal]
		ep.SASLQOP = strings.ToLower(kv[KeySASLQOP])
	}
	return ep, nil
}

// normalizeAuth maps hive.server2.authentication to what the client speaks.
// Newer Hive accepts a list (e.g. "LDAP,SAML"); the first mode our client can
// use wins. PAM is password authentication over SASL PLAIN (binary) or Basic
// (HTTP), exactly like LDAP on the wire.
func normalizeAuth(v string) hs2.Auth {
	if strings.TrimSpace(v) == "" {
		return hs2.AuthNone
	}
	var first hs2.Auth
	for _, m := range strings.Split(v, ",") {
		a := hs2.Auth(strings.ToUpper(strings.TrimSpace(m)))
		if a == "" {
			continue
		}
		if first == "" {
			first = a
		}
		switch a {
		case hs2.AuthNone, hs2.AuthNoSASL, hs2.AuthLDAP, hs2.AuthCustom, hs2.AuthKerberos:
			return a
		case "PAM":
			return hs2.AuthLDAP
		}
	}
	if first == "" {
		return hs2.AuthNone
	}
	return first // e.g. SAML alone: discovered, and refused by the client
}

// serviceRecord is what we need from a Hadoop registry ServiceRecord as
// HS2ActivePassiveHARegistry writes it.
type serviceRecord struct {
	Host     string
	Port     int
	Active   bool
	UniqueID string
	Attrs    map[string]string
}

const (
	activeEndpointAPI  = "activeEndpoint"
	passiveEndpointAPI = "passiveEndpoint"
)

// parseServiceRecord decodes the JSON of an instances/instance-NNNNNNNNNN
// znode: {"type":"JSONServiceRecord","internal":[{"api":"activeEndpoint",
// "addressType":"host/port","protocolType":"hadoop/IPC","addresses":[{"host":
// "h","port":"10000"}]}], "<attribute>":"<value>", ...}. Exactly one of the
// activeEndpoint and passiveEndpoint internal endpoints must be present.
func parseServiceRecord(data []byte) (serviceRecord, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return serviceRecord{}, fmt.Errorf("service record: %w", err)
	}
	var typ string
	if err := json.Unmarshal(raw["type"], &typ); err != nil || typ != "JSONServiceRecord" {
		return serviceRecord{}, errors.New(`service record: "type" is not "JSONServiceRecord"`)
	}
	var internal []struct {
		API       string            `json:"api"`
		Addresses []json.RawMessage `json:"addresses"`
	}
	if r, ok := raw["internal"]; ok {
		if err := json.Unmarshal(r, &internal); err != nil {
			return serviceRecord{}, fmt.Errorf("service record: internal endpoints: %w", err)
		}
	}
	var rec serviceRecord
	found := 0
	for _, e := range internal {
		if e.API != activeEndpointAPI && e.API != passiveEndpointAPI {
			continue
		}
		found++
		if len(e.Addresses) == 0 {
			return serviceRecord{}, fmt.Errorf("service record: %s has no address", e.API)
		}
		h, p, err := parseRecordAddress(e.Addresses[0])
		if err != nil {
			return serviceRecord{}, fmt.Errorf("service record: %s: %w", e.API, err)
		}
		rec.Host, rec.Port, rec.Active = h, p, e.API == activeEndpointAPI
	}
	switch found {
	case 0:
		return serviceRecord{}, errors.New("service record: no activeEndpoint or passiveEndpoint")
	case 1:
	default:
		return serviceRecord{}, errors.New("service record: both active and passive endpoints")
	}
	rec.Attrs = map[string]string{}
	for k, v := range raw {
		switch k {
		case "type", "description", "external", "internal":
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			rec.Attrs[k] = s
		}
	}
	rec.UniqueID = rec.Attrs[KeyUniqueID]
	return rec, nil
}

// parseRecordAddress reads one host/port address: {"host":h,"port":"p"} in
// Hadoop 2.7+, or the older ["h","p"] tuple.
func parseRecordAddress(a json.RawMessage) (string, int, error) {
	var host, port string
	var m map[string]string
	var tuple []string
	switch {
	case json.Unmarshal(a, &m) == nil && m != nil:
		host, port = m["host"], m["port"]
	case json.Unmarshal(a, &tuple) == nil && len(tuple) >= 2:
		host, port = tuple[0], tuple[1]
	default:
		return "", 0, fmt.Errorf("bad address %s", truncate(string(a)))
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	p, err := parsePort(port)
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}

// parseInstanceSeq reads the sequence of an "instance-NNNNNNNNNN" znode.
func parseInstanceSeq(name string) (int64, error) {
	s, ok := strings.CutPrefix(name, "instance-")
	if !ok {
		return 0, fmt.Errorf("znode %q is not instance-<sequence>", name)
	}
	return parseSeq(s)
}

// latchSeq reads the sequence of a Curator leader latch znode,
// "[_c_<uuid>-]latch-NNNNNNNNNN".
func latchSeq(name string) (int64, bool) {
	i := strings.LastIndex(name, "latch-")
	if i < 0 {
		return 0, false
	}
	n, err := parseSeq(name[i+len("latch-"):])
	return n, err == nil
}

// splitHostPort accepts host:port and [v6]:port, and an unbracketed IPv6
// address whose port follows the last colon (HS2 joins host and port with a
// plain ':').
func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		i := strings.LastIndexByte(s, ':')
		if i <= 0 || strings.Count(s, ":") < 3 || strings.ContainsAny(s, "[]") {
			return "", 0, fmt.Errorf("bad host:port %q", truncate(s))
		}
		h, p = s[:i], s[i+1:]
	}
	if err := checkHost(h); err != nil {
		return "", 0, err
	}
	n, err := parsePort(p)
	if err != nil {
		return "", 0, err
	}
	return h, n, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", truncate(s))
	}
	return n, nil
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/;=[]@?#", r) {
			return fmt.Errorf("bad host %q", truncate(h))
		}
	}
	return nil
}

func joinHostPort(h string, p int) string {
	return net.JoinHostPort(h, strconv.Itoa(p))
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

package replica

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/internal/testenv"
)

func TestKerberosIdentityFromConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	none := config.Default()
	none.Connectors = []config.Connector{{Name: "hive", Auth: "ldap"}}
	if id, err := kerberosIdentity(none, log); id != nil || err != nil {
		t.Fatalf("no kerberos configured: %v %v", id, err)
	}
	if kerberosOptions(none.Connectors[0], nil) != nil {
		t.Fatal("kerberos options without an identity")
	}

	kdc := testenv.StartKDC(t, testenv.KDCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kt, err := kdc.NewPrincipal(ctx, "hiveqd/gw.localhost")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Kerberos = config.Kerberos{Principal: kdc.Principal("hiveqd/gw.localhost"), Keytab: kt, Krb5Conf: kdc.Krb5Conf()}
	cfg.Connectors = []config.Connector{{Name: "hive", Auth: "kerberos", Principal: "hive/_HOST@" + kdc.Realm(), SASLQOP: "AUTH-CONF"}}
	id, err := kerberosIdentity(cfg, log)
	if err != nil || id == nil {
		t.Fatalf("identity: %v", err)
	}
	if l, _ := id.Stats(); l != 1 {
		t.Fatalf("%d logins at start-up, want 1", l)
	}
	k := kerberosOptions(cfg.Connectors[0], id)
	if k.Principal != "hive/_HOST@"+kdc.Realm() || k.QOP != "auth-conf" || k.Identity == nil {
		t.Fatalf("options %+v", k)
	}

	// A keytab without the principal stops start-up with a clear error.
	cfg.Kerberos.Principal = kdc.Principal("someone/else")
	if _, err := kerberosIdentity(cfg, log); err == nil || !strings.Contains(err.Error(), "has no key for someone/else") {
		t.Fatalf("wrong principal: %v", err)
	}
}

package replica

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/hiveqd/hiveqd/config"
	"github.com/hiveqd/hiveqd/hs2"
	"github.com/hiveqd/hiveqd/kerberos"
)

// kerberosIdentity is hiveqd's own Kerberos identity, made when a
// connector uses auth: kerberos or the kerberos block is set (servers
// discovered as KERBEROS need it too). Bad files or a principal missing
// from the keytab stop start-up; a failed first login (a KDC down) is
// logged and retried on each connection.
func kerberosIdentity(cfg config.Config, log *slog.Logger) (*kerberos.Identity, error) {
	k := cfg.Kerberos
	use := k != (config.Kerberos{})
	for _, c := range cfg.Connectors {
		use = use || strings.EqualFold(c.Auth, "kerberos")
	}
	if !use {
		return nil, nil
	}
	id, err := kerberos.New(kerberos.Config{Principal: k.Principal, Keytab: k.Keytab, Krb5Conf: k.Krb5Conf})
	if err != nil {
		return nil, fmt.Errorf("kerberos: %w", err)
	}
	if err := id.Login(); err != nil {
		log.Error("kerberos login failed; retrying on each HS2 connection", "principal", id.Principal(), "err", err)
	} else {
		log.Info("kerberos login", "principal", id.Principal())
	}
	return id, nil
}

// kerberosOptions are one connector's Kerberos settings; nil without an
// identity (KERBEROS servers are then refused with a clear error).
func kerberosOptions(c config.Connector, id *kerberos.Identity) *hs2.Kerberos {
	if id == nil {
		return nil
	}
	return &hs2.Kerberos{Identity: id, Principal: c.Principal, HTTPPrincipal: c.HTTPPrincipal, QOP: strings.ToLower(c.SASLQOP)}
}

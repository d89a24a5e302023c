package kerberos

import (
	"errors"
	"fmt"
	"strings"
)

// Classes of Kerberos failure; errors from this package wrap one of them
// and say what to check.
var (
	ErrPrincipalUnknown = errors.New("principal unknown to the KDC")
	ErrServerUnknown    = errors.New("server principal unknown to the KDC")
	ErrClockSkew        = errors.New("clock skew too great")
	ErrKDCUnreachable   = errors.New("KDC unreachable")
	ErrBadKeytab        = errors.New("keytab does not match the KDC")
	ErrNoKeyForEtype    = errors.New("keytab has no key for the encryption type")
	ErrExpired          = errors.New("ticket expired")
)

// explain classifies a gokrb5 error (whose types do not survive its
// wrapping, hence the text match) into one of the classes above.
func (id *Identity) explain(what, spn string, err error) error {
	s := err.Error()
	has := func(subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	switch {
	case has("KDC_ERR_S_PRINCIPAL_UNKNOWN"):
		return fmt.Errorf("kerberos: %s: %w: %s is not registered in realm %s; check the connector's principal (hive/_HOST@REALM: _HOST becomes the HS2 host name as discovered, lower-cased) and HS2's hive.server2.authentication.kerberos.principal: %v",
			what, ErrServerUnknown, spn, id.realm, err)
	case has("KDC_ERR_C_PRINCIPAL_UNKNOWN"):
		return fmt.Errorf("kerberos: %s: %w: %s is not in the KDC's database; check --kerberos-principal and the realm: %v", what, ErrPrincipalUnknown, id.Principal(), err)
	case has("KRB_AP_ERR_SKEW", "clock skew with KDC too large"):
		return fmt.Errorf("kerberos: %s: %w between this host and the KDC; synchronise the clocks (NTP): %v", what, ErrClockSkew, err)
	case has("KDC_ERR_ETYPE_NOSUPP", "matching key not found in keytab"):
		return fmt.Errorf("kerberos: %s: %w; the keytab %s lacks a key the KDC accepts for %s (re-export it with the KDC's enctypes, e.g. aes256-cts-hmac-sha1-96): %v",
			what, ErrNoKeyForEtype, id.cfg.Keytab, id.Principal(), err)
	case has("KDC_ERR_PREAUTH_FAILED", "KRB_AP_ERR_BAD_INTEGRITY", "integrity verification failed", "error decrypting"):
		return fmt.Errorf("kerberos: %s: %w: the keys in %s are not the KDC's for %s (stale or wrong keytab: re-export it, and check its kvno with klist -kt): %v",
			what, ErrBadKeytab, id.cfg.Keytab, id.Principal(), err)
	case has("KDC_ERR_TGT_REVOKED", "KRB_AP_ERR_TKT_EXPIRED"):
		return fmt.Errorf("kerberos: %s: %w: %v", what, ErrExpired, err)
	case has("Networking_Error", "connection refused", "no KDCs defined", "i/o timeout", "no such host", "dial "):
		return fmt.Errorf("kerberos: %s: %w for realm %s; check [realms] %s kdc in krb5.conf (%s) and that the KDC is up: %v",
			what, ErrKDCUnreachable, id.realm, id.realm, Krb5ConfPath(id.cfg.Krb5Conf, id.cfg.Getenv), err)
	}
	return fmt.Errorf("kerberos: %s: %v", what, err)
}

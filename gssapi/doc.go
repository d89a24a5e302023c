// Package gssapi is the part of the Kerberos V5 GSS-API mechanism that
// github.com/jcmturner/gokrb5/v8 lacks and hiveqd needs to speak to
// HiveServer2 the way its Java stack (the JDK's GSS-API under Thrift's SASL
// transport) does:
//
//   - RFC 4121 per-message tokens (Wrap/Unwrap) with integrity and with
//     confidentiality (sealed), real sequence numbers in both directions,
//     the SentByAcceptor/Sealed/AcceptorSubkey flags, the initiator and
//     acceptor key usages (22-25) and the RRC rotation;
//   - the initiator's AP-REQ with a subkey and a sequence number, and the
//     AP-REP: built by an acceptor, verified by an initiator (key usage 12,
//     ctime/cusec, the acceptor's subkey and sequence number);
//   - the RFC 4752 SASL GSSAPI exchange on both sides, including the
//     4-byte security-layer negotiation.
//
// gokrb5 provides the Kerberos messages, the encryption types and the KDC
// exchanges; this package adds only the GSS-API context on top. It is pure
// Go so hiveqd keeps CGO_ENABLED=0 and its static image. Only the RFC 3962
// and RFC 8009 AES encryption types use RFC 4121 tokens; des3 and rc4 (RFC
// 1964 tokens) are refused with ErrUnsupportedEtype.
package gssapi

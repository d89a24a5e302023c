// Command hs2sim runs the HiveServer2 simulator (package hs2sim) as a
// process, with an optional HTTP control endpoint for fault injection.
//
//	hs2sim --listen 127.0.0.1:0 --control 127.0.0.1:0 --zk 127.0.0.1:2181
//
// On start it prints "hs2sim listening on HOST:PORT" (and "hs2sim control
// on HOST:PORT") to stdout; SIGTERM or SIGINT closes it gracefully.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hiveqd/hiveqd/hs2sim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hs2sim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hs2sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      hs2sim.Config
		zkList   = fs.String("zk", "", "ZooKeeper servers host:port,... to register in (none: no registration)")
		users    = fs.String("users", "", "ldap auth: user:password,...")
		control  = fs.String("control", "", "control endpoint listen address (none: disabled)")
		tlsCert  = fs.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key enables TLS")
		tlsKey   = fs.String("tls-key", "", "TLS key file (PEM)")
		logLevel = fs.String("log-level", "info", "debug|info|warn|error")
		proxy    = fs.String("proxy-users", "*", "kerberos: short names allowed to impersonate through hive.server2.proxy.user or doAs (hadoop.proxyuser.<name>.*), comma-separated; * for all; empty for none")
		subkey   = fs.Bool("kerberos-acceptor-subkey", true, "kerberos: send an acceptor subkey in the AP-REP (as MIT does; the JDK's default is false)")
	)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:10000", "Thrift listen address (port 0: any free port)")
	fs.StringVar(&cfg.Transport, "transport", "binary", "binary|http")
	fs.StringVar(&cfg.HTTPPath, "http-path", "cliservice", "HTTP transport path")
	fs.StringVar(&cfg.Auth, "auth", "none", "none (SASL PLAIN, any password)|nosasl|ldap (SASL PLAIN/Basic checked against --users)|kerberos (SASL GSSAPI, HTTP SPNEGO)")
	fs.StringVar(&cfg.KerberosPrincipal, "kerberos-principal", "", "kerberos: the service principal, hive/host@REALM")
	fs.StringVar(&cfg.KerberosKeytab, "kerberos-keytab", "", "kerberos: keytab with the service principal's keys (and HTTP/host's for SPNEGO)")
	fs.StringVar(&cfg.SASLQOP, "sasl-qop", "auth", "kerberos, binary: auth|auth-int|auth-conf (hive.server2.thrift.sasl.qop)")
	fs.DurationVar(&cfg.ClockSkew, "kerberos-clock-skew", 0, "kerberos: allowed clock skew, also past a ticket's end (default: krb5.conf's clockskew from KRB5_CONFIG, else 5m)")
	fs.StringVar(&cfg.PublishedPrincipal, "kerberos-published-principal", "", "kerberos: principal published in ZooKeeper (default: the service principal with _HOST)")
	fs.DurationVar(&cfg.CookieMaxAge, "cookie-max-age", 24*time.Hour, "HTTP auth cookie Max-Age")
	fs.StringVar(&cfg.Version, "version", "3.1.3", "Hive version reported and registered")
	fs.StringVar(&cfg.ZKNamespace, "zk-namespace", "hiveserver2", "ZooKeeper namespace")
	fs.StringVar(&cfg.ZKMode, "zk-mode", "plain", "plain (HS2 dynamic discovery)|ha (active/passive HA registry)")
	fs.StringVar(&cfg.ZKDigest, "zk-digest", "", "ZooKeeper digest credentials user:password (nodes get creator ALL, world READ)")
	fs.DurationVar(&cfg.ZKSessionTimeout, "zk-session-timeout", 20*time.Second, "ZooKeeper session timeout")
	fs.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "host published in ZooKeeper (default: the listen host)")
	fs.BoolVar(&cfg.Active, "active", false, "ha mode: start active (default passive)")
	fs.DurationVar(&cfg.LongPoll, "long-poll", 5*time.Second, "GetOperationStatus long-poll timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.NoAcceptorSubkey = !*subkey
	if *proxy != "" {
		cfg.ProxyUsers = strings.Split(*proxy, ",")
	}
	if *zkList != "" {
		cfg.ZK = strings.Split(*zkList, ",")
	}
	if *users != "" {
		cfg.Users = map[string]string{}
		for _, up := range strings.Split(*users, ",") {
			u, p, ok := strings.Cut(up, ":")
			if !ok {
				return fmt.Errorf("--users: %q is not user:password", up)
			}
			cfg.Users[u] = p
		}
	}
	if *tlsCert != "" || *tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return err
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Bind the control endpoint first, so it serves by the time the Thrift
	// address is printed.
	var ctlLn net.Listener
	if *control != "" {
		var err error
		if ctlLn, err = net.Listen("tcp", *control); err != nil {
			return fmt.Errorf("control endpoint: %w", err)
		}
		defer ctlLn.Close()
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	s, err := hs2sim.Start(startCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	var ctl *http.Server
	ctlDone := make(chan error, 1)
	if ctlLn != nil {
		ctl = &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { ctlDone <- ctl.Serve(ctlLn) }()
	}
	fmt.Fprintf(stdout, "hs2sim listening on %s\n", s.Addr())
	if ctlLn != nil {
		fmt.Fprintf(stdout, "hs2sim control on %s\n", ctlLn.Addr())
	}

	<-ctx.Done()
	if ctl != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ctl.Shutdown(sctx)
		cancel()
		if err := <-ctlDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Warn("control endpoint", "err", err)
		}
	}
	return s.Close()
}

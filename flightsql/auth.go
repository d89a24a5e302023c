package flightsql

import (
	"context"
	"encoding/base64"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hiveqd/hiveqd/authn"
)

const handshakeMethod = "/arrow.flight.protocol.FlightService/Handshake"

// ServerOptions authenticate the Flight SQL port with a: every call with
// "authorization: Bearer TOKEN" or a verified client certificate, as on
// the gRPC port; and Flight's Handshake with Basic credentials (any user
// name, a token as the password) for user/password tools (JDBC, ODBC),
// which answers with "authorization: Bearer TOKEN" for the calls after.
// They include the port's codec (Codec).
func ServerOptions(a *authn.Authenticator) []grpc.ServerOption {
	unary, streamAuth := a.Interceptors()
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != handshakeMethod {
			return streamAuth(srv, ss, info, handler)
		}
		ctx, err := handshake(ss.Context(), a)
		if err != nil {
			return err
		}
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	return append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}, transportOptions()...)
}

// handshake authenticates a Handshake and sets the bearer token to use
// in the response header.
func handshake(ctx context.Context, a *authn.Authenticator) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	if vals := md.Get("authorization"); len(vals) > 0 {
		scheme, cred, _ := strings.Cut(vals[0], " ")
		switch strings.ToLower(scheme) {
		case "basic":
			// Clients differ on padding (arrow-go sends none).
			raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(cred), "="))
			if err != nil {
				return nil, status.Error(codes.Unauthenticated, "malformed Basic credentials")
			}
			_, pw, ok := strings.Cut(string(raw), ":")
			if !ok || pw == "" {
				return nil, status.Error(codes.Unauthenticated, "Basic credentials need a token as the password")
			}
			token = pw
		case "bearer":
			token = strings.TrimSpace(cred)
		}
		if token != "" {
			md = md.Copy()
			md.Set("authorization", "Bearer "+token)
			ctx = metadata.NewIncomingContext(ctx, md)
		}
	}
	ctx, err := a.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if token != "" {
		if err := grpc.SetHeader(ctx, metadata.Pairs("authorization", "Bearer "+token)); err != nil {
			return nil, status.Errorf(codes.Internal, "handshake: %v", err)
		}
	}
	return ctx, nil
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

package hs2

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// authCookie is the cookie HS2's ThriftHttpServlet sets after a successful
// login; sending it back skips re-authentication (an LDAP bind per call).
const authCookie = "hive.server2.auth"

// httpTransport sends each Thrift call as one POST and reads the reply from
// the response body.
type httpTransport struct {
	client    *http.Client
	closeIdle func()
	url       string
	server    string
	auth      HTTPAuthorizer
	now       func() time.Time

	wbuf bytes.Buffer
	body io.ReadCloser // the reply being read
	r    *bufio.Reader

	cookie     *http.Cookie
	cookieDies time.Time // zero: no expiry known
}

func (t *httpTransport) Open() error            { return nil }
func (t *httpTransport) IsOpen() bool           { return true }
func (t *httpTransport) RemainingBytes() uint64 { return math.MaxUint64 }
func (t *httpTransport) survivesFailure() bool  { return true }

func (t *httpTransport) Close() error {
	t.dropBody()
	t.closeIdle()
	return nil
}

// arm only clears what a failed call may have left: Flush gets the call's
// ctx, and the HTTP client aborts the request, and a body read in
// progress, when it ends. Disarming finishes the reply before that ctx is
// cancelled so the keep-alive connection goes back to the idle pool
// instead of being closed.
func (t *httpTransport) arm(context.Context) func() {
	t.wbuf.Reset()
	return t.dropBody
}

func (t *httpTransport) Write(p []byte) (int, error)       { return t.wbuf.Write(p) }
func (t *httpTransport) WriteByte(b byte) error            { return t.wbuf.WriteByte(b) }
func (t *httpTransport) WriteString(s string) (int, error) { return t.wbuf.WriteString(s) }

var errNoReply = errors.New("http: no reply to read")

func (t *httpTransport) Read(p []byte) (int, error) {
	if t.r == nil {
		return 0, errNoReply
	}
	return t.r.Read(p)
}

func (t *httpTransport) ReadByte() (byte, error) {
	if t.r == nil {
		return 0, errNoReply
	}
	return t.r.ReadByte()
}

// dropBody finishes the previous reply so its connection can be reused.
func (t *httpTransport) dropBody() {
	if t.body != nil {
		_, _ = io.CopyN(io.Discard, t.body, 64<<10)
		t.body.Close()
		t.body, t.r = nil, nil
	}
}

// Flush POSTs the buffered call. It sends the auth cookie when it holds a
// live one and credentials (Basic, or a fresh SPNEGO token) otherwise; a
// 401 on the cookie (expired server side) is retried once with
// credentials, as Hive JDBC does.
func (t *httpTransport) Flush(ctx context.Context) error {
	t.dropBody()
	defer t.wbuf.Reset()
	// A copy: the client may still be sending the body when Do returns
	// (an early 401), and wbuf is reused by the next call.
	payload := bytes.Clone(t.wbuf.Bytes())
	useCookie := t.liveCookie()
	for {
		resp, err := t.post(ctx, payload, useCookie)
		if err != nil {
			var aerr *AuthError
			if errors.As(err, &aerr) {
				return aerr
			}
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized && useCookie {
			drain(resp)
			t.cookie = nil
			useCookie = false
			continue
		}
		if resp.StatusCode != http.StatusOK {
			msg := strings.TrimSpace(readSome(resp.Body))
			drain(resp)
			if msg == "" {
				msg = resp.Status
			}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return &AuthError{Server: t.server, Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg)}
			}
			return fmt.Errorf("http: status %s: %s", resp.Status, msg)
		}
		t.keepCookie(resp)
		t.body = resp.Body
		t.r = bufio.NewReaderSize(resp.Body, ioBufSize)
		return nil
	}
}

func (t *httpTransport) post(ctx context.Context, payload []byte, useCookie bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-thrift")
	req.Header.Set("Accept", "application/x-thrift")
	req.Header.Set("User-Agent", "hiveqd-hs2")
	// Harmless when HS2's XSRF filter is off; required when it is on.
	req.Header.Set("X-XSRF-HEADER", "true")
	if useCookie {
		req.AddCookie(&http.Cookie{Name: t.cookie.Name, Value: t.cookie.Value})
	} else if err := t.auth.Authorize(req); err != nil {
		return nil, err
	}
	return t.client.Do(req)
}

// liveCookie reports whether we hold an auth cookie that has not expired.
// The cookie is reused over plain HTTP too even when marked Secure (HS2's
// default): the Basic credentials it replaces travel in the clear anyway.
func (t *httpTransport) liveCookie() bool {
	if t.cookie == nil {
		return false
	}
	if !t.cookieDies.IsZero() && !t.now().Before(t.cookieDies) {
		t.cookie = nil
		return false
	}
	return true
}

func (t *httpTransport) keepCookie(resp *http.Response) {
	for _, c := range resp.Cookies() {
		if c.Name != authCookie {
			continue
		}
		if c.MaxAge < 0 || c.Value == "" {
			t.cookie = nil
			continue
		}
		t.cookie = c
		t.cookieDies = time.Time{}
		switch {
		case c.MaxAge > 0:
			t.cookieDies = t.now().Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			t.cookieDies = c.Expires
		}
	}
}

func readSome(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return string(b)
}

func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

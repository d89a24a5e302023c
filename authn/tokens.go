package authn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// MinTokenLength refuses guessable tokens; `openssl rand -hex 32` makes a
// good one.
const MinTokenLength = 16

// Fingerprint names a token in logs without revealing it: the first 12 hex
// digits of its SHA-256.
func Fingerprint(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:6])
}

type tokenEntry struct {
	hash      [sha256.Size]byte
	principal string
	admin     bool
}

type tokenSet struct{ entries []tokenEntry }

// lookup compares the token's digest with every entry in constant time and
// without stopping at a match, so timing reveals neither the token nor
// where it is listed. Hashing first makes lengths equal.
func (s *tokenSet) lookup(token string) (tokenEntry, bool) {
	var found tokenEntry
	ok := 0
	if s == nil {
		return found, false
	}
	h := sha256.Sum256([]byte(token))
	for _, e := range s.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found, ok = e, 1
		}
	}
	return found, ok == 1
}

// parseTokens reads "TOKEN PRINCIPAL [admin]" lines; blank lines and lines
// starting with # are skipped, and # starts a trailing comment. Errors name
// the line, never its token.
func parseTokens(data []byte) (*tokenSet, error) {
	set := &tokenSet{}
	seen := map[[sha256.Size]byte]int{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{n}, args...)...))
		}
		if len(fields) < 2 || len(fields) > 3 {
			bad("want TOKEN PRINCIPAL [admin], got %d fields", len(fields))
			continue
		}
		token, principal := fields[0], fields[1]
		admin := false
		if len(fields) == 3 {
			if !strings.EqualFold(fields[2], "admin") {
				bad("third field must be admin")
				continue
			}
			admin = true
		}
		if len(token) < MinTokenLength {
			bad("token shorter than %d characters", MinTokenLength)
			continue
		}
		if strings.IndexFunc(principal, unicode.IsControl) >= 0 {
			bad("principal has control characters")
			continue
		}
		h := sha256.Sum256([]byte(token))
		if prev, dup := seen[h]; dup {
			bad("token repeats the one on line %d", prev)
			continue
		}
		seen[h] = n
		set.entries = append(set.entries, tokenEntry{hash: h, principal: principal, admin: admin})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// fileStamp identifies a version of a file (see changed).
type fileStamp struct{ info os.FileInfo }

func (s fileStamp) changed(cur os.FileInfo) bool {
	old := s.info
	return old == nil || !os.SameFile(old, cur) || old.Size() != cur.Size() || !old.ModTime().Equal(cur.ModTime())
}

// Reload reads the token file now (say on SIGHUP). On error the tokens in
// force stay, and the error is returned and logged.
func (a *Authenticator) Reload() error {
	if a.opts.TokenFile == "" {
		return nil
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	fi, err := os.Stat(a.opts.TokenFile)
	if err != nil {
		return a.reloadFailed(fmt.Errorf("authn: token file: %w", err))
	}
	return a.load(fi)
}

// load parses the file; the caller holds reloadMu.
func (a *Authenticator) load(fi os.FileInfo) error {
	// Recorded even when the content is bad, so an unchanged broken file is
	// not parsed (and logged) again every second.
	a.file = fileStamp{fi}
	data, err := os.ReadFile(a.opts.TokenFile)
	if err != nil {
		return a.reloadFailed(fmt.Errorf("authn: token file: %w", err))
	}
	set, err := parseTokens(data)
	if err != nil {
		return a.reloadFailed(fmt.Errorf("authn: token file %s: %w", a.opts.TokenFile, err))
	}
	prev := a.tokens.Swap(set)
	a.lastErr = ""
	if len(set.entries) == 0 {
		a.log.Warn("token file lists no tokens: bearer tokens are all refused", "file", a.opts.TokenFile)
	}
	attrs := []any{"file", a.opts.TokenFile, "tokens", len(set.entries)}
	if prev != nil {
		a.log.Info("token file reloaded", attrs...)
	} else {
		a.log.Info("token file loaded", attrs...)
	}
	return nil
}

func (a *Authenticator) reloadFailed(err error) error {
	if a.tokens.Load() == nil {
		return err // start-up: the caller reports it
	}
	if msg := err.Error(); msg != a.lastErr {
		a.lastErr = msg
		a.log.Error("token file not reloaded; the previous tokens stay in force", "err", err)
	}
	return err
}

// maybeReload checks the token file's stamp at most once per ReloadEvery,
// on the request path: a stat is cheap, and callers that arrive while one
// check runs go on with the tokens in force instead of waiting.
func (a *Authenticator) maybeReload() {
	now := a.now().UnixNano()
	last := a.lastCheck.Load()
	if now-last < int64(a.opts.ReloadEvery) || !a.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !a.reloadMu.TryLock() {
		return
	}
	defer a.reloadMu.Unlock()
	fi, err := os.Stat(a.opts.TokenFile)
	if err != nil {
		_ = a.reloadFailed(fmt.Errorf("authn: token file: %w", err))
		return
	}
	if a.file.changed(fi) {
		_ = a.load(fi)
	}
}

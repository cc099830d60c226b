// Package auth issues and verifies the API's bearer tokens: HS256 JWTs with
// claims sub (user id), role (user, service, admin) and exp.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"reelfeed/internal/httpx"
)

// Role is what a token may do.
type Role string

const (
	// RoleUser reads only its own feed and posts only its own events.
	RoleUser Role = "user"
	// RoleService acts for any user: the app backend.
	RoleService Role = "service"
	// RoleAdmin is a service that may also reach /v1/admin.
	RoleAdmin Role = "admin"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleUser, RoleService, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want user, service or admin)", s)
}

// Principal is who made a request.
type Principal struct {
	Subject string
	Role    Role
}

// CanActFor reports whether p may read or write userID's data.
func (p Principal) CanActFor(userID string) bool {
	return p.Role == RoleService || p.Role == RoleAdmin || p.Subject == userID
}

type claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// Authority signs and verifies tokens with one HS256 secret.
type Authority struct {
	secret []byte
	now    func() time.Time
}

// New returns an Authority for secret.
func New(secret []byte) *Authority {
	return &Authority{secret: secret, now: time.Now}
}

// RandomSecret returns a fresh 32-byte secret, hex-encoded, for dev mode.
func RandomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// Issue signs a token for sub with role, valid for ttl.
func (a *Authority) Issue(sub string, role Role, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("auth: empty subject")
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", errors.New("auth: ttl must be positive")
	}
	now := a.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		Role: role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	})
	return tok.SignedString(a.secret)
}

// Verify checks a token's signature, algorithm and expiry.
func (a *Authority) Verify(token string) (Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Principal{}, errors.New("token expired")
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return Principal{}, errors.New("token signature invalid")
		default:
			return Principal{}, fmt.Errorf("token invalid: %v", err)
		}
	}
	if c.Subject == "" {
		return Principal{}, errors.New("token has no sub claim")
	}
	role, err := ParseRole(string(c.Role))
	if err != nil {
		return Principal{}, fmt.Errorf("token role: %v", err)
	}
	return Principal{Subject: c.Subject, Role: role}, nil
}

type principalKey struct{}

// WithPrincipal stores p in ctx.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Middleware authenticates every request: 401 when the bearer token is
// missing, malformed, badly signed or expired.
func (a *Authority) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if h == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reelfeed"`)
			httpx.Error(w, http.StatusUnauthorized, "unauthenticated", "missing bearer token", nil)
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reelfeed"`)
			httpx.Error(w, http.StatusUnauthorized, "unauthenticated", "Authorization header must be 'Bearer <token>'", nil)
			return
		}
		p, err := a.Verify(strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reelfeed", error="invalid_token"`)
			httpx.Error(w, http.StatusUnauthorized, "unauthenticated", err.Error(), nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// RequireRole lets through only principals with one of roles (403 else).
func RequireRole(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := FromContext(r.Context())
			for _, role := range roles {
				if p.Role == role {
					next.ServeHTTP(w, r)
					return
				}
			}
			httpx.Error(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not do this", p.Role), nil)
		})
	}
}

// Forbid writes the 403 a handler returns when p may not act for a user.
func Forbid(w http.ResponseWriter, p Principal, userID string) {
	httpx.Error(w, http.StatusForbidden, "forbidden",
		fmt.Sprintf("a %s token for %q may not act for user %q", p.Role, p.Subject, userID), nil)
}

package atlas

import (
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	secrets := []string{"s3cr3t-value", "tok-abc.def", "abc"} // "abc" is too short to scrub by value
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"plain message about abc", "plain message about abc"},
		{"Authorization: Bearer eyJhbGciOi.x-y_z~+/=", "Authorization: Bearer [REDACTED]"},
		{`{"headers":{"Authorization":["Bearer eyJ"]}}`, `{"headers":{"Authorization":["Bearer [REDACTED]"]}}`},
		{`map[Authorization:[Bearer eyJ] Accept:[x]]`, `map[Authorization:[Bearer [REDACTED]] Accept:[x]]`},
		{"authorization=opaque123; next", "authorization=[REDACTED]; next"},
		{`AUTHORIZATION: "raw-token"`, `AUTHORIZATION: "[REDACTED]"`},
		{"got basic bWRiOnNlY3JldA== from you", "got basic [REDACTED] from you"},
		{"Bearer%20abc123 in a query", "Bearer%20[REDACTED] in a query"},
		{"Bearer Bearer xyz", "Bearer [REDACTED]"},
		{`Digest username="pub", realm="MMS", nonce="n", uri="/x", response="9f", qop=auth, nc=00000001, cnonce="c" end`,
			"Digest [REDACTED] end"},
		{`proxy https://user:pa55@proxy.example:3128 refused`, "proxy https://[REDACTED]@proxy.example:3128 refused"},
		{"echo s3cr3t-value and tok-abc.def", "echo [REDACTED] and [REDACTED]"},
		{"cut at tok-ab…", "cut at [REDACTED]…"},
		{"Bearer token is invalid", "Bearer [REDACTED] is invalid"},
	} {
		if got := scrub(tt.in, secrets); got != tt.want {
			t.Errorf("scrub(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	// A secret that survives replacement (made of the marker's characters)
	// withholds the whole message.
	if got := scrub("a]]]]]]]b", []string{"]]]]"}); got != withheld {
		t.Errorf("scrub with a marker-shaped secret = %q, want the message withheld", got)
	}
}

func TestSecretForms(t *testing.T) {
	cfg := Config{ServiceAccount: &ServiceAccount{ClientID: testClientID, ClientSecret: `se"c ret/+`}}
	got := strings.Join(staticSecrets(cfg), "\n")
	for _, want := range []string{`se"c ret/+`, `se\"c ret/+`, "se%22c+ret%2F%2B", "bWRiX3NhX2lkX3Rlc3Q6c2UlMjJjK3JldCUyRiUyQg=="} {
		if !strings.Contains(got, want) {
			t.Errorf("secret forms lack %q:\n%s", want, got)
		}
	}
}

// isToken68 reports whether s is a non-empty RFC 9110 token68 without padding.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/", r)) {
			return false
		}
	}
	return true
}

// FuzzScrub: whatever surrounds them, a held secret never survives
// scrubbing, nor does a bearer credential, and scrubbing is idempotent.
func FuzzScrub(f *testing.F) {
	f.Add("upstream said ", "mdb_sa_sk_TOPSECRET", "eyJhbGciOi", " and more")
	f.Add("", "]]]]", "x", "")
	f.Add("Authorization:", "tok-1234", "Bearer", "=")
	f.Add("https://u:", "pass-word", "a", "@h/")
	f.Fuzz(func(t *testing.T, before, secret, bearer, after string) {
		if len(secret) < minSecret {
			return
		}
		in := before + secret + after + " Bearer " + bearer + " " + before
		out := scrub(in, []string{secret})
		if strings.Contains(out, secret) {
			t.Fatalf("scrub(%q) = %q keeps the secret %q", in, out, secret)
		}
		// A scheme word or a leading "+" (a URL-encoded space) is read as
		// part of the separator, not of the credential.
		ambiguous := strings.EqualFold(bearer, "bearer") || strings.EqualFold(bearer, "basic") || strings.HasPrefix(bearer, "+")
		if isToken68(bearer) && !ambiguous && strings.Contains(out, "Bearer "+bearer) {
			t.Fatalf("scrub(%q) = %q keeps the bearer credential %q", in, out, bearer)
		}
		if again := scrub(out, []string{secret}); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
	})
}

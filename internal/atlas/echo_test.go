package atlas

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// liveToken matches the access tokens fakeAtlas issues.
var liveToken = regexp.MustCompile(`tok-[0-9]`)

// echoAuth answers with status and a body that echoes the request's
// Authorization header, as a misbehaving proxy in front of Atlas may.
func echoAuth(status int, jsonBody bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if jsonBody {
			writeAPIError(w, status, "PROXY_ERROR", "upstream refused request with headers map[Authorization:["+auth+"] Accept:[x]]; token was "+strings.TrimPrefix(auth, "Bearer "))
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("<html>bad gateway; you sent Authorization: " + auth + "</html>"))
	})
}

// TestEchoedCredentialIsScrubbed: an upstream that echoes the live bearer
// token (or, at the token endpoint, the Basic credential) in a 4xx/5xx
// body must not get it into the error text or fields.
func TestEchoedCredentialIsScrubbed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		json   bool
	}{{"json 401", 401, true}, {"json 403", 403, true}, {"html 502", 502, false}, {"json 500", 500, true}} {
		t.Run(tc.name, func(t *testing.T) {
			fa := newFakeAtlas(t, echoAuth(tc.status, tc.json))
			c := newTestClient(t, fa, func(cfg *Config) { cfg.MaxAttempts = 1 })
			_, err := c.Clusters.Get(t.Context(), testProject, "prod")
			e, ok := AsError(err)
			if !ok || e.StatusCode != tc.status {
				t.Fatalf("err = %v, want a %d *Error", err, tc.status)
			}
			for _, text := range []string{err.Error(), e.Detail, e.Reason, e.ErrorCode} {
				if liveToken.MatchString(text) {
					t.Errorf("live token in %q", text)
				}
			}
			if !strings.Contains(err.Error(), redacted) {
				t.Errorf("error %q does not show where the credential was", err)
			}
		})
	}
	t.Run("token endpoint echoes Basic", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			basic := strings.TrimPrefix(auth, "Basic ")
			writeAPIError(w, 400, "INVALID_REQUEST", "rejected "+auth+" (credential "+basic+", secret "+testSecret+")")
		})
		c := newTestClient(t, h)
		err := c.Authenticate(t.Context())
		if err == nil {
			t.Fatal("Authenticate succeeded")
		}
		if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "Basic bWRi") || strings.Contains(err.Error(), "bWRiX3Nh") {
			t.Errorf("credential in %q", err)
		}
	})
}

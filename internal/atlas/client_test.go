package atlas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewValidatesConfig(t *testing.T) {
	sa := &ServiceAccount{ClientID: testClientID, ClientSecret: testSecret}
	key := &APIKey{PublicKey: "pub", PrivateKey: testPrivKey}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"service account", Config{ServiceAccount: sa}, ""},
		{"api key", Config{APIKey: key}, ""},
		{"both", Config{ServiceAccount: sa, APIKey: key}, "exactly one of serviceAccount and apiKey, not both"},
		{"neither", Config{}, "exactly one of serviceAccount and apiKey"},
		{"empty client id", Config{ServiceAccount: &ServiceAccount{ClientSecret: testSecret}}, "serviceAccount.clientID is empty"},
		{"empty client secret", Config{ServiceAccount: &ServiceAccount{ClientID: "id"}}, "serviceAccount.clientSecret is empty"},
		{"empty public key", Config{APIKey: &APIKey{PrivateKey: testPrivKey}}, "apiKey.publicKey is empty"},
		{"empty private key", Config{APIKey: &APIKey{PublicKey: "pub"}}, "apiKey.privateKey is empty"},
		{"bad scheme", Config{ServiceAccount: sa, BaseURL: "ftp://x"}, "scheme must be http or https"},
		{"no host", Config{ServiceAccount: sa, BaseURL: "https://"}, "host is missing"},
		{"credentials in URL", Config{ServiceAccount: sa, BaseURL: "https://user:" + testPrivKey + "@atlas.test"}, "must not carry credentials"},
		{"query in URL", Config{ServiceAccount: sa, BaseURL: "https://atlas.test/?x=1"}, "must not have a query"},
		{"unparseable URL", Config{ServiceAccount: sa, BaseURL: "https://a b\x7f"}, "baseURL is not a URL"},
		{"negative rpm", Config{ServiceAccount: sa, RequestsPerMinute: -1}, "requestsPerMinute -1"},
		{"negative timeout", Config{ServiceAccount: sa, Timeout: -1}, "timeout -1ns"},
		{"negative attempts", Config{ServiceAccount: sa, MaxAttempts: -2}, "maxAttempts -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			for _, secret := range []string{testSecret, testPrivKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks a secret", err)
				}
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{ServiceAccount: &ServiceAccount{ClientID: "id", ClientSecret: "s"}, BaseURL: "http://127.0.0.1:8080/prefix/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.baseURL != "http://127.0.0.1:8080/prefix" {
		t.Errorf("baseURL = %q", c.baseURL)
	}
	if c.maxAttempts != DefaultMaxAttempts || c.timeout != DefaultTimeout || c.userAgent != DefaultUserAgent {
		t.Errorf("defaults: attempts %d timeout %s ua %q", c.maxAttempts, c.timeout, c.userAgent)
	}
	if got := float64(c.budgets.limit) * 60; got != DefaultRequestsPerMinute || c.budgets.burst != 10 {
		t.Errorf("budget = %v/min burst %d, want %d/min burst 10", got, c.budgets.burst, DefaultRequestsPerMinute)
	}
	if c.tokens.conf.TokenURL != "http://127.0.0.1:8080/prefix"+TokenPath {
		t.Errorf("token URL = %q", c.tokens.conf.TokenURL)
	}
	d, err := New(Config{APIKey: &APIKey{PublicKey: "p", PrivateKey: "k"}, RequestsPerMinute: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.baseURL != DefaultBaseURL || d.budgets.burst != 3 {
		t.Errorf("api key client: baseURL %q burst %d", d.baseURL, d.budgets.burst)
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	sa := ServiceAccount{ClientID: testClientID, ClientSecret: testSecret}
	key := APIKey{PublicKey: "pubkey", PrivateKey: testPrivKey}
	cfg := Config{ServiceAccount: &sa, BaseURL: "https://atlas.test"}
	cfgKey := Config{APIKey: &key}
	var outs []string
	for _, v := range []any{sa, &sa, key, &key, cfg, &cfg, cfgKey, &cfgKey, []any{sa, key}, map[string]any{"k": key}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("cfg", "sa", sa, "key", key, "cfg", cfg)
	outs = append(outs, logBuf.String())
	for _, v := range []any{sa, key, struct{ A APIKey }{key}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	for _, o := range outs {
		if strings.Contains(o, testSecret) || strings.Contains(o, testPrivKey) ||
			strings.Contains(o, fmt.Sprintf("%x", testSecret)) || strings.Contains(o, fmt.Sprintf("%x", testPrivKey)) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	// The non-secret half stays visible, so the redaction is not just "print nothing".
	if s := fmt.Sprint(sa); !strings.Contains(s, testClientID) || !strings.Contains(s, redacted) {
		t.Errorf("ServiceAccount prints %q", s)
	}
	if s := fmt.Sprint(cfgKey); !strings.Contains(s, "pubkey") || !strings.Contains(s, redacted) {
		t.Errorf("Config prints %q", s)
	}
}

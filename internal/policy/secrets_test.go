package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"
)

const (
	saSecret    = "sa-secret-Zq8vN2"
	adminSecret = "admin-token-Pp4kW7"
	apiSecret   = "api-private-Jx3mR9"
)

const withFiles = `atlas:
  auth:
    serviceAccount:
      clientID: mdb_sa_id_1
      clientSecretFile: /run/credentials/backupd.service/client-secret
server:
  adminTokenFile: admin-token
` + base

func filesEnv(vars map[string]string, modes map[string]uint32) Env {
	ffs := fakeFS{files: map[string]string{
		"/run/credentials/backupd.service/client-secret": saSecret + "\n",
		"/etc/backupd/admin-token":                       adminSecret + "\r\n",
		"/creds/admin-token":                             adminSecret,
		"/etc/backupd/private-key":                       apiSecret,
	}, modes: map[string]fs.FileMode{}}
	for p, m := range modes {
		ffs.modes[p] = fs.FileMode(m)
	}
	return testEnv(vars, ffs)
}

func TestSecretsFromFiles(t *testing.T) {
	cfg, err := Parse([]byte(withFiles), "/etc/backupd/config.yaml", filesEnv(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Atlas.ServiceAccount.ClientSecret.Reveal(); got != saSecret {
		t.Errorf("client secret %q, want the file's content without the newline", got)
	}
	if got := cfg.Server.AdminToken.Reveal(); got != adminSecret {
		t.Errorf("admin token %q, want the file's content without CRLF", got)
	}
	if cfg.Server.AdminTokenFile != "/etc/backupd/admin-token" {
		t.Errorf("relative adminTokenFile resolved to %q, want the config file's directory", cfg.Server.AdminTokenFile)
	}
	if cfg.Atlas.APIKey != nil || cfg.Atlas.ServiceAccount.ClientID != "mdb_sa_id_1" {
		t.Errorf("auth = %+v", cfg.Atlas)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}

	// With systemd's LoadCredential=, relative paths resolve against $CREDENTIALS_DIRECTORY.
	cfg, err = Parse([]byte(withFiles), "/etc/backupd/config.yaml", filesEnv(map[string]string{EnvCredentialDir: "/creds"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.AdminTokenFile != "/creds/admin-token" {
		t.Errorf("adminTokenFile resolved to %q, want /creds/admin-token", cfg.Server.AdminTokenFile)
	}
}

func TestSecretFileModeWarning(t *testing.T) {
	cfg, err := Parse([]byte(withFiles), "/etc/backupd/config.yaml", filesEnv(nil, map[string]uint32{"/etc/backupd/admin-token": 0o644, "/run/credentials/backupd.service/client-secret": 0o640}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{`/etc/backupd/config.yaml:7:19: server.adminTokenFile: secret file "/etc/backupd/admin-token" has mode 0644: restrict it to 0640 or narrower (chmod 600)`}
	if !slices.Equal(got, want) {
		t.Fatalf("warnings\n got %q\nwant %q", got, want)
	}
}

func TestSecretFileErrors(t *testing.T) {
	env := filesEnv(nil, nil)
	missing := strings.Replace(withFiles, "/run/credentials/backupd.service/client-secret", "/nope/secret", 1)
	_, issues := parseIssues(t, missing, env)
	want := []string{`cfg.yaml:5:25: atlas.auth.serviceAccount.clientSecretFile: cannot read secret file "/nope/secret": no such file`,
		`cfg.yaml:7:19: server.adminTokenFile: cannot read secret file "admin-token": no such file`}
	if !slices.Equal(issues, want) {
		t.Fatalf("issues\n got %q\nwant %q", issues, want)
	}
	empty := testEnv(nil, fakeFS{files: map[string]string{"/run/credentials/backupd.service/client-secret": "\n", "admin-token": "x"}})
	_, issues = parseIssues(t, withFiles, empty)
	want = []string{`cfg.yaml:5:25: atlas.auth.serviceAccount.clientSecretFile: secret file "/run/credentials/backupd.service/client-secret" is empty`}
	if !slices.Equal(issues, want) {
		t.Fatalf("issues\n got %q\nwant %q", issues, want)
	}
}

func TestAuth(t *testing.T) {
	env := func(kv ...string) Env {
		vars := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			vars[kv[i]] = kv[i+1]
		}
		ffs := fakeFS{files: map[string]string{"/k": apiSecret, "/s": saSecret}}
		return testEnv(vars, ffs)
	}
	cases := []struct {
		name, auth string
		env        Env
		wantSA     string // client id, or
		wantKey    string // public key
		wantSecret string
		want       []string // errors
	}{
		{name: "service account from env", env: env(EnvClientID, "id1", EnvClientSecret, saSecret), wantSA: "id1", wantSecret: saSecret},
		{name: "api key from env", env: env(EnvPublicKey, "pub", EnvPrivateKey, apiSecret), wantKey: "pub", wantSecret: apiSecret},
		{name: "both pairs in env", env: env(EnvClientID, "id1", EnvClientSecret, saSecret, EnvPublicKey, "pub", EnvPrivateKey, apiSecret),
			want: []string{"cfg.yaml:1:1: atlas.auth: both service account (MONGODB_ATLAS_CLIENT_ID) and API key (MONGODB_ATLAS_PUBLIC_API_KEY) credentials are set in the environment: unset one pair or configure atlas.auth"}},
		{name: "half a pair", env: env(EnvClientID, "id1"),
			want: []string{"cfg.yaml:1:1: atlas.auth: MONGODB_ATLAS_CLIENT_ID is set but MONGODB_ATLAS_CLIENT_SECRET is not"}},
		{name: "half an api key", env: env(EnvPrivateKey, apiSecret),
			want: []string{"cfg.yaml:1:1: atlas.auth: MONGODB_ATLAS_PRIVATE_API_KEY is set but MONGODB_ATLAS_PUBLIC_API_KEY is not"}},
		{name: "nothing", env: env(),
			want: []string{"cfg.yaml:1:1: atlas.auth: required: configure atlas.auth.serviceAccount or atlas.auth.apiKey, or set MONGODB_ATLAS_CLIENT_ID and MONGODB_ATLAS_CLIENT_SECRET (or MONGODB_ATLAS_PUBLIC_API_KEY and MONGODB_ATLAS_PRIVATE_API_KEY)"}},
		{name: "atlas section without auth", auth: "atlas:\n  timeout: 10s\n", env: env(),
			want: []string{"cfg.yaml:1:1: atlas.auth: required: configure atlas.auth.serviceAccount or atlas.auth.apiKey, or set MONGODB_ATLAS_CLIENT_ID and MONGODB_ATLAS_CLIENT_SECRET (or MONGODB_ATLAS_PUBLIC_API_KEY and MONGODB_ATLAS_PRIVATE_API_KEY)"}},
		{name: "service account file", auth: "atlas:\n  auth:\n    serviceAccount: {clientID: id2, clientSecretFile: /s}\n", env: env(EnvClientSecret, "ignored"), wantSA: "id2", wantSecret: saSecret},
		{name: "service account id from env", auth: "atlas:\n  auth:\n    serviceAccount: {clientSecretFile: /s}\n", env: env(EnvClientID, "id3"), wantSA: "id3", wantSecret: saSecret},
		{name: "service account secret from env", auth: "atlas:\n  auth:\n    serviceAccount: {clientID: id4}\n", env: env(EnvClientSecret, saSecret), wantSA: "id4", wantSecret: saSecret},
		{name: "api key file", auth: "atlas:\n  auth:\n    apiKey: {publicKey: pub2, privateKeyFile: /k}\n", env: env(), wantKey: "pub2", wantSecret: apiSecret},
		{name: "inline client secret", auth: "atlas:\n  auth:\n    serviceAccount: {clientID: id, clientSecret: " + saSecret + "}\n", env: env(),
			want: []string{"cfg.yaml:3:36: atlas.auth.serviceAccount.clientSecret: inline secrets are not accepted: write the secret to a file and set clientSecretFile, or set MONGODB_ATLAS_CLIENT_SECRET"}},
		{name: "inline private key", auth: "atlas:\n  auth:\n    apiKey: {publicKey: p, privateKey: " + apiSecret + "}\n", env: env(),
			want: []string{"cfg.yaml:3:28: atlas.auth.apiKey.privateKey: inline secrets are not accepted: write the private key to a file and set privateKeyFile, or set MONGODB_ATLAS_PRIVATE_API_KEY"}},
		{name: "both blocks", auth: "atlas:\n  auth:\n    serviceAccount: {clientID: id, clientSecretFile: /s}\n    apiKey: {publicKey: p, privateKeyFile: /k}\n", env: env(),
			want: []string{"cfg.yaml:4:5: atlas.auth: set only one of serviceAccount or apiKey"}},
		{name: "service account without id", auth: "atlas:\n  auth:\n    serviceAccount: {clientSecretFile: /s}\n", env: env(),
			want: []string{"cfg.yaml:3:21: atlas.auth.serviceAccount.clientID: required (or set MONGODB_ATLAS_CLIENT_ID)"}},
		{name: "service account without secret", auth: "atlas:\n  auth:\n    serviceAccount: {clientID: id}\n", env: env(),
			want: []string{"cfg.yaml:3:21: atlas.auth.serviceAccount.clientSecretFile: required: name a file holding the client secret, or set MONGODB_ATLAS_CLIENT_SECRET"}},
		{name: "api key without secret", auth: "atlas:\n  auth:\n    apiKey: {publicKey: p}\n", env: env(),
			want: []string{"cfg.yaml:3:13: atlas.auth.apiKey.privateKeyFile: required: name a file holding the private key, or set MONGODB_ATLAS_PRIVATE_API_KEY"}},
		{name: "unknown auth kind", auth: "atlas:\n  auth:\n    oauth: {}\n", env: env(EnvClientID, "id1", EnvClientSecret, saSecret),
			want: []string{`cfg.yaml:3:5: atlas.auth.oauth: unknown key (allowed: serviceAccount, apiKey)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, issues := parseIssues(t, tc.auth+base, tc.env)
			if !slices.Equal(issues, tc.want) {
				t.Fatalf("issues\n got %q\nwant %q", issues, tc.want)
			}
			for _, is := range issues {
				if strings.Contains(is, saSecret) || strings.Contains(is, apiSecret) {
					t.Fatalf("an error message contains a secret: %s", is)
				}
			}
			if tc.want != nil {
				return
			}
			a := cfg.Atlas
			switch {
			case tc.wantSA != "":
				if a.APIKey != nil || a.ServiceAccount == nil || a.ServiceAccount.ClientID != tc.wantSA || a.ServiceAccount.ClientSecret.Reveal() != tc.wantSecret {
					t.Fatalf("auth = %+v %+v", a.ServiceAccount, a.APIKey)
				}
			default:
				if a.ServiceAccount != nil || a.APIKey == nil || a.APIKey.PublicKey != tc.wantKey || a.APIKey.PrivateKey.Reveal() != tc.wantSecret {
					t.Fatalf("auth = %+v %+v", a.ServiceAccount, a.APIKey)
				}
			}
		})
	}
}

// TestSecretsNeverPrinted renders a loaded config every way a program
// might and checks no secret value appears.
func TestSecretsNeverPrinted(t *testing.T) {
	cfg, err := Parse([]byte(withFiles), "/etc/backupd/config.yaml", filesEnv(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	keyCfg, err := Parse([]byte("atlas: {auth: {apiKey: {publicKey: pub, privateKeyFile: private-key}}}\n"+base), "/etc/backupd/config.yaml", filesEnv(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	var renders []string
	for _, c := range []*Config{cfg, keyCfg} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			renders = append(renders, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c), fmt.Sprintf(verb, c.Atlas), fmt.Sprintf(verb, c.Server))
			if c.Atlas.ServiceAccount != nil {
				renders = append(renders, fmt.Sprintf(verb, *c.Atlas.ServiceAccount), fmt.Sprintf(verb, c.Atlas.ServiceAccount.ClientSecret))
			}
			if c.Atlas.APIKey != nil {
				renders = append(renders, fmt.Sprintf(verb, *c.Atlas.APIKey))
			}
		}
		renders = append(renders, c.String())
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		renders = append(renders, string(j))
		jv, err := json.Marshal(*c) // a value, not a pointer: Secret fields still redact
		if err != nil {
			t.Fatal(err)
		}
		renders = append(renders, string(jv))
		y, err := yaml.Marshal(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		renders = append(renders, string(y))

		var zbuf bytes.Buffer
		zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zbuf), zap.DebugLevel))
		zl.Info("loaded", zap.Any("config", c), zap.Any("atlas", c.Atlas), zap.Any("server", c.Server), zap.Stringer("cfg", c))
		_ = zl.Sync()
		renders = append(renders, zbuf.String())

		var sbuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&sbuf, nil)).Info("loaded", "config", c, "atlas", c.Atlas, "server", c.Server)
		renders = append(renders, sbuf.String())
	}
	for _, r := range renders {
		for _, s := range []string{saSecret, adminSecret, apiSecret} {
			if strings.Contains(r, s) {
				t.Fatalf("secret leaked in rendering:\n%s", r)
			}
		}
	}
	// And the redacted view still says which credentials are configured.
	if s := cfg.String(); !strings.Contains(s, `"clientSecret":"[redacted]"`) || !strings.Contains(s, `"adminToken":"[redacted]"`) {
		t.Fatalf("String() does not show redacted credentials: %s", s)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultAddr is the daemon's default server.listen, as a URL.
const DefaultAddr = "http://127.0.0.1:9469"

// apiError is the HTTP API's error body.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// callAPI sends one request to the daemon and decodes a JSON answer into
// out. Non-2xx answers become errors carrying the API's message.
func callAPI(ctx context.Context, method, url, token string, body io.Reader, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, fmt.Errorf("building request to %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling backupd at %s (is the daemon running?): %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer from %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
			msg := ae.Error
			if ae.Field != "" {
				msg = ae.Field + ": " + msg
			}
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, msg)
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data[:min(len(data), 200)])))
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data // the body as it is (a report in Markdown or HTML)
		return resp.StatusCode, nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer from %s: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

// baseURL turns a listen address or URL into a base URL.
func baseURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return addr
	}
	if strings.HasPrefix(addr, ":") || strings.HasPrefix(addr, "0.0.0.0:") {
		addr = "127.0.0.1:" + addr[strings.LastIndex(addr, ":")+1:]
	}
	return "http://" + addr
}

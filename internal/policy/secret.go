package policy

import (
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// Secret holds a credential read from a file or the environment. Every way
// of printing or serialising it (fmt verbs, JSON, YAML, slog, zap via
// fmt.Stringer) yields "[redacted]", so a logged Config can never leak a
// credential; only Reveal returns the value, for the one place that sends it.
type Secret struct {
	value string
}

// NewSecret wraps a credential value.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the credential. Call it only where the value is sent to Atlas.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no credential is set.
func (s Secret) IsZero() bool { return s.value == "" }

// String redacts the value.
func (s Secret) String() string { return redacted }

// GoString redacts the value for %#v.
func (s Secret) GoString() string { return redacted }

// Format redacts the value for every fmt verb (including %d and %x, which
// would otherwise print the underlying string field).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON redacts the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText redacts the value (map keys, encoders that prefer text).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML redacts the value.
func (s Secret) MarshalYAML() (any, error) { return redacted, nil }

// LogValue redacts the value for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxAliasExpansions keeps a hostile file from multiplying work through anchors.
const maxAliasExpansions = 1000

// decoder walks yaml.Node trees so every value keeps its line and column,
// collecting every problem instead of stopping at the first.
type decoder struct {
	file     string
	issues   []Issue
	warnings []Issue
	aliases  int
	// drillTargets are the restore drills' targets, checked against every
	// snapshot and export policy once all are parsed.
	drillTargets []drillRef
}

// field is one key/value pair of a mapping.
type field struct {
	key, val *yaml.Node
	path     string
}

// fields is the decoded shape of one mapping: the pairs that were allowed.
type fields struct {
	node *yaml.Node // the mapping (or the node that should have been one)
	path string
	m    map[string]field
}

func (f fields) get(key string) (field, bool) {
	v, ok := f.m[key]
	return v, ok
}

func (d *decoder) errorAt(n *yaml.Node, path, format string, args ...any) {
	d.issues = append(d.issues, d.issue(n, path, fmt.Sprintf(format, args...)))
}

func (d *decoder) warnAt(n *yaml.Node, path, format string, args ...any) {
	d.warnings = append(d.warnings, d.issue(n, path, fmt.Sprintf(format, args...)))
}

func (d *decoder) issue(n *yaml.Node, path, msg string) Issue {
	// Without a node the issue is about the whole file: line 1, no column.
	is := Issue{File: d.file, Line: 1, Path: path, Message: msg}
	if n != nil && n.Line > 0 {
		is.Line, is.Column = n.Line, n.Column
	}
	return is
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into exactly one YAML document and returns its
// root node, or nil after recording why it cannot.
func (d *decoder) document(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on crafted input before; a config file must
		// never crash the daemon or the validate verb.
		if r := recover(); r != nil {
			d.errorAt(nil, "", "the YAML parser failed on this file: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorAt(nil, "", "the file is empty: expected a mapping with atlas, server, state, log, defaults and policies")
			return nil
		}
		d.syntaxError(err)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.errorAt(&next, "", "only one YAML document is allowed: remove the second document (starting with ---)")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorAt(&doc, "", "the file is empty: expected a mapping with atlas, server, state, log, defaults and policies")
		return nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		d.errorAt(root, "", "the file is empty: expected a mapping with atlas, server, state, log, defaults and policies")
		return nil
	}
	return root
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into a located issue.
func (d *decoder) syntaxError(err error) {
	msg, line := err.Error(), 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			line = n
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.issues = append(d.issues, Issue{File: d.file, Line: line, Message: "invalid YAML: " + msg})
}

// resolve follows aliases, within limits, so anchors work but cannot recurse.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		d.aliases++
		if d.aliases > maxAliasExpansions {
			if d.aliases == maxAliasExpansions+1 {
				d.errorAt(n, path, "too many alias expansions (more than %d): simplify the anchors", maxAliasExpansions)
			}
			return nil
		}
		n = n.Alias
	}
	return n
}

// mapping checks that n is a mapping, reports unknown and duplicate keys
// (suggesting the closest allowed key) and returns the allowed pairs. A
// null value counts as an empty mapping, so a section whose keys are all
// commented out is simply absent.
func (d *decoder) mapping(n *yaml.Node, path string, allowed ...string) (fields, bool) {
	out := fields{node: n, path: path, m: map[string]field{}}
	n = d.resolve(n, path)
	if n == nil {
		return out, false
	}
	if isNull(n) {
		return out, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "must be a mapping (key: value), got %s", describe(n))
		return out, false
	}
	out.node = n
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i], path), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k, path, "keys must be plain names, got %s", describe(k))
			continue
		}
		name := k.Value
		kp := join(path, name)
		if k.Tag == "!!merge" || name == "<<" {
			d.errorAt(k, kp, "merge keys (<<) are not supported: put shared settings in defaults")
			continue
		}
		if prev, dup := out.m[name]; dup {
			d.errorAt(k, kp, "duplicate key (first defined at line %d)", prev.key.Line)
			continue
		}
		if !contains(allowed, name) {
			if s := suggest(name, allowed); s != "" {
				d.errorAt(k, kp, "unknown key (did you mean %q?)", s)
			} else {
				d.errorAt(k, kp, "unknown key (allowed: %s)", strings.Join(allowed, ", "))
			}
			// Remember it so a second copy is still reported as a duplicate.
			out.m[name] = field{key: k, path: kp}
			continue
		}
		out.m[name] = field{key: k, val: v, path: kp}
	}
	for name, f := range out.m {
		if f.val == nil {
			delete(out.m, name)
		}
	}
	return out, true
}

// list checks that f's value is a sequence and returns its items.
func (d *decoder) list(f field) ([]*yaml.Node, bool) {
	n := d.resolve(f.val, f.path)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		d.errorAt(n, f.path, "must be a list, got %s", describe(n))
		return nil, false
	}
	return n.Content, true
}

// str decodes a string scalar. Numbers and dates are taken as written;
// booleans and null are refused because they are almost always a mistake.
func (d *decoder) str(f field) (string, bool) {
	n := d.resolve(f.val, f.path)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorAt(n, f.path, "must be a string, got %s", describe(n))
		return "", false
	}
	switch n.Tag {
	case "!!str", "!!int", "!!float", "!!timestamp":
		return n.Value, true
	}
	d.errorAt(n, f.path, "must be a string, got %s (quote it if you mean the text)", describe(n))
	return "", false
}

func (d *decoder) integer(f field) (int, bool) {
	n := d.resolve(f.val, f.path)
	if n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorAt(n, f.path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.errorAt(n, f.path, "must be an integer that fits in 64 bits")
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(f field) (bool, bool) {
	n := d.resolve(f.val, f.path)
	if n == nil {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorAt(n, f.path, "must be true or false, got %s", describe(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.errorAt(n, f.path, "must be true or false")
		return false, false
	}
	return v, true
}

// duration decodes a duration; positive requires > 0, otherwise >= 0.
func (d *decoder) duration(f field, positive bool) (time.Duration, bool) {
	n := d.resolve(f.val, f.path)
	if n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		d.errorAt(n, f.path, "must be a duration such as 30s, 15m, 2h30m or 90d, got %s", describe(n))
		return 0, false
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		d.errorAt(n, f.path, "%v: use a number with a unit, such as 30s, 15m, 2h30m or 90d", err)
		return 0, false
	}
	switch {
	case positive && v <= 0:
		d.errorAt(n, f.path, "must be a positive duration")
		return 0, false
	case v < 0:
		d.errorAt(n, f.path, "must not be negative")
		return 0, false
	}
	return v, true
}

// oneOf decodes a string that must be one of choices.
func (d *decoder) oneOf(f field, choices ...string) (string, bool) {
	v, ok := d.str(f)
	if !ok {
		return "", false
	}
	if !contains(choices, v) {
		d.errorAt(f.val, f.path, "must be one of %s, got %q", strings.Join(choices, ", "), v)
		return "", false
	}
	return v, true
}

// matching decodes a string that must match re; the message names the
// pattern, never the value (which could be a misplaced secret).
func (d *decoder) matching(f field, re *regexp.Regexp) (string, bool) {
	v, ok := d.str(f)
	if !ok {
		return "", false
	}
	if !re.MatchString(v) {
		d.errorAt(f.val, f.path, "must match %s", re.String())
		return "", false
	}
	return v, true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names a node's kind for "got ..." messages without echoing its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!str":
			return "a string"
		case "!!timestamp":
			return "a date"
		}
		return "a value tagged " + n.Tag
	}
	return "an unsupported YAML node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// suggest returns the allowed key closest to a misspelt one, if close enough.
func suggest(name string, allowed []string) string {
	best, bestDist := "", 0
	for _, a := range allowed {
		dist := levenshtein(strings.ToLower(name), strings.ToLower(a))
		if best == "" || dist < bestDist {
			best, bestDist = a, dist
		}
	}
	if best == "" || bestDist > max(2, len(best)/3) {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

package atlassim

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/backupd/backupd/internal/atlas"
)

// The spec checks load the OpenAPI subset vendored in the client's testdata
// (../testdata/openapi, see its README) and verify that every response the
// simulator sends uses only properties the spec declares for that
// operation's 200 schema, carries the schema's required properties, and
// keeps to its enums.

const specFile = "../testdata/openapi/atlas-backup-subset-v2.yaml"

type openAPI struct {
	doc map[string]any
	err error
}

var (
	specOnce sync.Once
	specDoc  openAPI
)

// loadSpec parses the vendored subset once. newHarness calls it on the
// top-level test, so a failure is reported there and never from a subtest on
// its parent.
func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	specOnce.Do(func() {
		data, err := os.ReadFile(specFile)
		if err != nil {
			specDoc.err = fmt.Errorf("reading the vendored OpenAPI subset: %w", err)
			return
		}
		specDoc.err = yaml.Unmarshal(data, &specDoc.doc)
	})
	if specDoc.err != nil {
		t.Fatalf("OpenAPI subset: %v", specDoc.err)
	}
	return specDoc.doc
}

func mapAt(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

// specPath is the spec's path key of a route.
func specPath(rt route) string { return atlas.APIPrefix + "/" + strings.Join(rt.pattern, "/") }

// responseSchema returns the 200 schema of an operation for a media type.
func responseSchema(t *testing.T, spec map[string]any, rt route, media string) map[string]any {
	t.Helper()
	op := mapAt(spec, "paths", specPath(rt), strings.ToLower(rt.method))
	if op == nil {
		t.Fatalf("spec has no %s %s", rt.method, specPath(rt))
	}
	s := mapAt(op, "responses", "200", "content", media, "schema")
	if s == nil {
		t.Fatalf("spec has no 200 %s schema for %s %s", media, rt.method, specPath(rt))
	}
	return s
}

type schemaChecker struct {
	spec map[string]any
	errs []string
}

func (c *schemaChecker) resolve(s map[string]any) (map[string]any, string) {
	ref, _ := s["$ref"].(string)
	if ref == "" {
		return s, ""
	}
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	return mapAt(c.spec, "components", "schemas", name), name
}

// collect gathers the properties and required names of a schema, through
// $ref, allOf and oneOf. A property declared by several oneOf branches keeps
// each declaration as an alternative; oneOf branches add no required names.
func (c *schemaChecker) collect(s map[string]any, props map[string][]map[string]any, required map[string]bool, seen map[string]bool, withRequired bool) {
	s, name := c.resolve(s)
	if s == nil || (name != "" && seen[name]) {
		return
	}
	if name != "" {
		seen[name] = true
	}
	for k, v := range mapAt(s, "properties") {
		if m, ok := v.(map[string]any); ok {
			props[k] = append(props[k], m)
		}
	}
	if withRequired {
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				required[r.(string)] = true
			}
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			c.collect(part.(map[string]any), props, required, seen, withRequired)
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		for _, part := range one {
			c.collect(part.(map[string]any), props, required, seen, false)
		}
	}
}

func (c *schemaChecker) check(path string, s map[string]any, v any, seen map[string]bool) {
	s, name := c.resolve(s)
	if s == nil {
		c.errs = append(c.errs, path+": unresolvable schema")
		return
	}
	if typ, _ := s["type"].(string); typ == "array" {
		arr, ok := v.([]any)
		if !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: want array, got %T", path, v))
			return
		}
		items, _ := s["items"].(map[string]any)
		for i, item := range arr {
			if items != nil {
				c.check(fmt.Sprintf("%s[%d]", path, i), items, item, map[string]bool{})
			}
		}
		return
	}
	switch typ, _ := s["type"].(string); typ {
	case "string":
		str, ok := v.(string)
		if !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: want string, got %T", path, v))
			return
		}
		if enum, ok := s["enum"].([]any); ok {
			found := false
			for _, e := range enum {
				found = found || e == str
			}
			if !found {
				c.errs = append(c.errs, fmt.Sprintf("%s: %q is not in the enum %v", path, str, enum))
			}
		}
		return
	case "integer", "number":
		if _, ok := v.(float64); !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: want number, got %T", path, v))
		}
		return
	case "boolean":
		if _, ok := v.(bool); !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: want boolean, got %T", path, v))
		}
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if _, hasProps := s["properties"]; hasProps {
			c.errs = append(c.errs, fmt.Sprintf("%s: want object, got %T", path, v))
		}
		return
	}
	// A discriminator picks the concrete schema by the value's property.
	if d := mapAt(s, "discriminator"); d != nil && !seen["disc:"+name] {
		prop, _ := d["propertyName"].(string)
		if val, ok := obj[prop].(string); ok {
			if target, ok := mapAt(d, "mapping")[val].(string); ok {
				seen["disc:"+name] = true
				seen["disc:"+strings.TrimPrefix(target, "#/components/schemas/")] = true
				c.check(path, map[string]any{"$ref": target}, v, seen)
				return
			}
		}
	}
	props := map[string][]map[string]any{}
	required := map[string]bool{}
	c.collect(s, props, required, map[string]bool{}, true)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		alts, ok := props[k]
		if !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: property %q is not declared by schema %s", path, k, name))
			continue
		}
		// The value must fit at least one declaration of the property.
		var firstErrs []string
		for i, ps := range alts {
			sub := &schemaChecker{spec: c.spec}
			sub.check(path+"."+k, ps, obj[k], map[string]bool{})
			if len(sub.errs) == 0 {
				firstErrs = nil
				break
			}
			if i == 0 {
				firstErrs = sub.errs
			}
		}
		c.errs = append(c.errs, firstErrs...)
	}
	for r := range required {
		if _, ok := obj[r]; !ok {
			c.errs = append(c.errs, fmt.Sprintf("%s: required property %q is missing (schema %s)", path, r, name))
		}
	}
}

// assertSpecShape checks a 200 body against the spec's schema for the route.
func assertSpecShape(t *testing.T, op string, media string, body []byte) {
	t.Helper()
	spec := loadSpec(t)
	rt := routeByOp(t, op)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: body is not JSON: %v\n%s", op, err, body)
	}
	c := &schemaChecker{spec: spec}
	c.check(op, responseSchema(t, spec, rt, media), v, map[string]bool{})
	for _, e := range c.errs {
		t.Errorf("spec shape: %s", e)
	}
}

// assertErrorShape checks an error body against ApiError.
func assertErrorShape(t *testing.T, body []byte) {
	t.Helper()
	spec := loadSpec(t)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, body)
	}
	c := &schemaChecker{spec: spec}
	c.check("error", map[string]any{"$ref": "#/components/schemas/ApiError"}, v, map[string]bool{})
	for _, e := range c.errs {
		t.Errorf("spec shape: %s", e)
	}
}

func routeByOp(t *testing.T, op string) route {
	t.Helper()
	for _, rt := range routes {
		if rt.op == op {
			return rt
		}
	}
	t.Fatalf("no route for op %s", op)
	return route{}
}

// TestRoutesMatchSpec pins every simulated operation to a spec operation
// with the same method, path and newest media type.
func TestRoutesMatchSpec(t *testing.T) {
	spec := loadSpec(t)
	ops := map[string]bool{}
	for _, rt := range routes {
		if ops[rt.op] {
			t.Errorf("op %s is routed twice", rt.op)
		}
		ops[rt.op] = true
		if rt.outsideSubset {
			if mapAt(spec, "paths", specPath(rt)) != nil {
				t.Errorf("%s is marked outside the subset but the subset has %s", rt.op, specPath(rt))
			}
			continue
		}
		op := mapAt(spec, "paths", specPath(rt), strings.ToLower(rt.method))
		if op == nil {
			t.Errorf("%s: %s %s is not in the spec", rt.op, rt.method, specPath(rt))
			continue
		}
		content := mapAt(op, "responses", "200", "content")
		if content[mediaType(rt.versions[0].date)] == nil {
			t.Errorf("%s: spec's 200 media types are %v, simulator's newest is %s", rt.op, keysOf(content), mediaType(rt.versions[0].date))
		}
		if rt.method == "POST" && mapAt(op, "requestBody", "content", mediaType(rt.versions[0].date)) == nil {
			t.Errorf("%s: spec declares no request body under %s", rt.op, mediaType(rt.versions[0].date))
		}
	}
	// Every spec operation is simulated.
	for p, item := range mapAt(spec, "paths") {
		for method := range item.(map[string]any) {
			found := false
			for _, rt := range routes {
				found = found || (specPath(rt) == p && strings.ToLower(rt.method) == method)
			}
			if !found {
				t.Errorf("spec operation %s %s is not simulated", method, p)
			}
		}
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSchemaCheckerCatchesMistakes proves the shape checks can fail.
func TestSchemaCheckerCatchesMistakes(t *testing.T) {
	spec := loadSpec(t)
	cases := []struct {
		name   string
		schema string
		body   string
		want   string
	}{
		{"undeclared property", "DiskBackupExportJob", `{"exportBucketId":"32b6e34b3d91647abb20e7b9","progress":3}`, `property "progress" is not declared`},
		{"missing required", "DiskBackupExportJob", `{"id":"32b6e34b3d91647abb20e7b9"}`, `required property "exportBucketId" is missing`},
		{"enum", "DiskBackupExportJob", `{"exportBucketId":"32b6e34b3d91647abb20e7b9","state":"Done"}`, `"Done" is not in the enum`},
		{"discriminated required", "DiskBackupSnapshotExportBucketResponse", `{"_id":"32b6e34b3d91647abb20e7b9","bucketName":"abc","cloudProvider":"AWS"}`, `required property "iamRoleId" is missing`},
		{"discriminated undeclared", "DiskBackupSnapshot", `{"id":"32b6e34b3d91647abb20e7b9","type":"replicaSet","members":[]}`, `property "members" is not declared`},
		{"nested type", "DiskBackupExportJob", `{"exportBucketId":"32b6e34b3d91647abb20e7b9","exportStatus":{"totalCollections":"ten"}}`, "want number"},
		{"oneOf alternatives", "ClusterDescription20240805", `{"replicationSpecs":[{"regionConfigs":[{"providerName":"AWS","electableSpecs":{"instanceSize":"M7"}}]}]}`, `"M7" is not in the enum`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.body), &v); err != nil {
				t.Fatal(err)
			}
			c := &schemaChecker{spec: spec}
			c.check("x", map[string]any{"$ref": "#/components/schemas/" + tc.schema}, v, map[string]bool{})
			if !strings.Contains(strings.Join(c.errs, "\n"), tc.want) {
				t.Errorf("errors %q lack %q", c.errs, tc.want)
			}
		})
	}
}

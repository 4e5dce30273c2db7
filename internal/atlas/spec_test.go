package atlas

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// specFile is the vendored OpenAPI subset the client conforms to (see
// testdata/openapi/README.md). It is part of the module, so the conformance
// tests run in a plain clone.
const specFile = "testdata/openapi/atlas-backup-subset-v2.yaml"

// loadSpec parses the vendored OpenAPI subset.
func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatalf("reading the vendored OpenAPI subset: %v", err)
	}
	var spec map[string]any
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("parsing the spec: %v", err)
	}
	return spec
}

// specDoc gives typed access to the parsed spec.
type specDoc struct{ root map[string]any }

func m(v any) map[string]any { r, _ := v.(map[string]any); return r }
func l(v any) []any          { r, _ := v.([]any); return r }

// resolve follows a local $ref ("#/components/...").
func (s specDoc) resolve(node map[string]any) map[string]any {
	for range 10 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		cur := any(s.root)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = m(cur)[part]
		}
		node = m(cur)
	}
	return node
}

// properties merges a schema's properties through $ref, allOf, oneOf, anyOf
// and discriminator mappings (the union of every variant).
func (s specDoc) properties(node map[string]any, seen map[string]bool) map[string]map[string]any {
	out := map[string]map[string]any{}
	if ref, ok := node["$ref"].(string); ok {
		if seen[ref] {
			return out
		}
		seen[ref] = true
	}
	node = s.resolve(node)
	for name, p := range m(node["properties"]) {
		out[name] = m(p)
	}
	var subs []any
	for _, k := range []string{"allOf", "oneOf", "anyOf"} {
		subs = append(subs, l(node[k])...)
	}
	for _, ref := range m(m(node["discriminator"])["mapping"]) {
		subs = append(subs, map[string]any{"$ref": ref})
	}
	for _, sub := range subs {
		for name, p := range s.properties(m(sub), seen) {
			if _, dup := out[name]; !dup {
				out[name] = p
			}
		}
	}
	return out
}

type specOp struct {
	template, method string
	pathItem, op     map[string]any
}

// operation finds the operation serving method+path, preferring the template
// with the fewest parameters (".../snapshots/shardedClusters" over ".../snapshots/{snapshotId}").
func (s specDoc) operation(method, path string) (specOp, bool) {
	var best specOp
	bestParams := -1
	for tmpl, item := range m(s.root["paths"]) {
		re := "^" + regexp.MustCompile(`\\\{[^/]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		if !regexp.MustCompile(re).MatchString(path) {
			continue
		}
		op := m(m(item)[strings.ToLower(method)])
		if op == nil {
			continue
		}
		n := strings.Count(tmpl, "{")
		if bestParams == -1 || n < bestParams {
			best, bestParams = specOp{tmpl, method, m(item), op}, n
		}
	}
	return best, bestParams >= 0
}

func (s specDoc) parameters(o specOp) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, p := range append(l(o.pathItem["parameters"]), l(o.op["parameters"])...) {
		r := s.resolve(m(p))
		out[r["in"].(string)+":"+r["name"].(string)] = r
	}
	return out
}

// newestMedia returns the newest dated media type of content that carries no x-sunset.
func newestMedia(content map[string]any) string {
	var types []string
	for mt, v := range content {
		if _, sunset := m(v)["x-sunset"]; !sunset && strings.HasPrefix(mt, "application/vnd.atlas.") {
			types = append(types, mt)
		}
	}
	sort.Strings(types) // dates sort lexically
	if len(types) == 0 {
		return ""
	}
	return types[len(types)-1]
}

func TestRequestsConformToOpenAPISpec(t *testing.T) {
	doc := specDoc{loadSpec(t)}
	rec := &recorder{}
	c := newTestClient(t, newFakeAtlas(t, rec))
	covered := map[string]bool{}
	for _, oc := range allOps() {
		if err := oc.call(t.Context(), c); err != nil {
			t.Fatalf("%s: %v", oc.op, err)
		}
		for _, r := range rec.take() {
			o, ok := doc.operation(r.Method, r.Path)
			if !ok {
				t.Errorf("%s: %s %s matches no operation in the spec", oc.op, r.Method, r.Path)
				continue
			}
			covered[o.method+" "+o.template] = true
			checkRequest(t, doc, oc.op, o, r)
		}
	}
	// Every operation in the subset is exercised, except those backupd does
	// not call yet (notSimulated, in the simulator's spec test too).
	for tmpl, item := range m(doc.root["paths"]) {
		for method := range m(item) {
			if method == "parameters" || notCalled[strings.ToUpper(method)+" "+tmpl] {
				continue
			}
			if key := strings.ToUpper(method) + " " + tmpl; !covered[key] {
				t.Errorf("spec operation %s is not exercised by the client", key)
			}
		}
	}
}

// notCalled are the subset's operations the client does not implement
// (none today; the simulator's spec test keeps the same rule).
var notCalled = map[string]bool{}

func checkRequest(t *testing.T, doc specDoc, op string, o specOp, r recorded) {
	t.Helper()
	content := m(m(m(o.op["responses"])["200"])["content"])
	if _, ok := content[r.Accept]; !ok {
		t.Errorf("%s: Accept %q is not a 200 media type of %s %s", op, r.Accept, o.method, o.template)
	}
	if want := newestMedia(content); r.Accept != want {
		t.Errorf("%s: Accept %q, newest non-sunset is %q", op, r.Accept, want)
	}
	params := doc.parameters(o)
	for name := range r.Query {
		if _, ok := params["query:"+name]; !ok {
			t.Errorf("%s: query parameter %q is not declared for %s %s", op, name, o.method, o.template)
		}
	}
	// Path parameter values satisfy their declared patterns.
	names := regexp.MustCompile(`\{([^/]+)\}`).FindAllStringSubmatch(o.template, -1)
	tmplParts, pathParts := strings.Split(o.template, "/"), strings.Split(r.Path, "/")
	for _, n := range names {
		for i, part := range tmplParts {
			if part != "{"+n[1]+"}" {
				continue
			}
			p := params["path:"+n[1]]
			if p == nil {
				t.Errorf("%s: path parameter %s undeclared", op, n[1])
				continue
			}
			if pat, ok := m(p["schema"])["pattern"].(string); ok && !regexp.MustCompile(pat).MatchString(pathParts[i]) {
				t.Errorf("%s: %s=%q does not match %s", op, n[1], pathParts[i], pat)
			}
		}
	}
	if o.method != "POST" {
		if r.ContentType != "" || len(r.Body) != 0 {
			t.Errorf("%s: GET carries a body or Content-Type", op)
		}
		return
	}
	rb := doc.resolve(m(o.op["requestBody"]))
	media := m(m(rb["content"])[r.ContentType])
	if media == nil {
		t.Errorf("%s: Content-Type %q is not declared for the request body", op, r.ContentType)
		return
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v", op, err)
	}
	checkBody(t, doc, op, "", m(media["schema"]), body)
}

// checkBody checks that every field sent exists in the request schema, is
// not readOnly, and that required fields are present.
func checkBody(t *testing.T, doc specDoc, op, prefix string, schema map[string]any, body map[string]any) {
	t.Helper()
	props := doc.properties(schema, map[string]bool{})
	for k, v := range body {
		p, ok := props[k]
		if !ok {
			t.Errorf("%s: request field %s%s is not in the schema", op, prefix, k)
			continue
		}
		if p["readOnly"] == true {
			t.Errorf("%s: request field %s%s is readOnly", op, prefix, k)
		}
		switch vv := v.(type) {
		case map[string]any:
			checkBody(t, doc, op, prefix+k+".", p, vv)
		case []any:
			for _, item := range vv {
				if obj, ok := item.(map[string]any); ok {
					checkBody(t, doc, op, prefix+k+"[].", m(doc.resolve(p)["items"]), obj)
				}
			}
		}
	}
	for _, req := range l(doc.resolve(schema)["required"]) {
		if _, ok := body[req.(string)]; !ok {
			t.Errorf("%s: required request field %s%v missing", op, prefix, req)
		}
	}
}

// TestResponseTypesMatchSpec checks that every JSON field the Go types decode
// exists in the response schema of the operations that return them, so a
// misspelt tag (e.g. "id" for the bucket's "_id") cannot silently decode as empty.
func TestResponseTypesMatchSpec(t *testing.T) {
	doc := specDoc{loadSpec(t)}
	types := map[string]reflect.Type{
		OpTakeSnapshot: reflect.TypeFor[Snapshot](), OpGetSnapshot: reflect.TypeFor[Snapshot](),
		OpGetShardedSnapshot: reflect.TypeFor[Snapshot](), OpListSnapshots: reflect.TypeFor[Page[Snapshot]](),
		OpListShardedSnapshots: reflect.TypeFor[Page[Snapshot]](),
		OpCreateExport:         reflect.TypeFor[ExportJob](), OpGetExport: reflect.TypeFor[ExportJob](), OpListExports: reflect.TypeFor[Page[ExportJob]](),
		OpListExportBuckets: reflect.TypeFor[Page[ExportBucket]](), OpGetExportBucket: reflect.TypeFor[ExportBucket](),
		OpListFlexSnapshots: reflect.TypeFor[Page[FlexSnapshot]](), OpGetFlexSnapshot: reflect.TypeFor[FlexSnapshot](),
		OpCreateFlexRestore: reflect.TypeFor[FlexRestoreJob](), OpGetFlexRestore: reflect.TypeFor[FlexRestoreJob](),
		OpListFlexRestores: reflect.TypeFor[Page[FlexRestoreJob]](),
		OpCreateRestore:    reflect.TypeFor[RestoreJob](), OpGetRestore: reflect.TypeFor[RestoreJob](),
		OpListRestores: reflect.TypeFor[Page[RestoreJob]](),
		OpListClusters: reflect.TypeFor[Page[Cluster]](), OpGetCluster: reflect.TypeFor[Cluster](),
		OpListFlexClusters: reflect.TypeFor[Page[FlexCluster]](), OpGetFlexCluster: reflect.TypeFor[FlexCluster](),
		OpGetBackupSchedule: reflect.TypeFor[BackupSchedule](), OpGetCompliancePolicy: reflect.TypeFor[CompliancePolicy](),
	}
	for _, oc := range allOps() {
		typ, ok := types[oc.op]
		if !ok {
			t.Errorf("%s: no response type listed", oc.op)
			continue
		}
		path := oc.path
		o, found := doc.operation(oc.method, path)
		if !found {
			t.Errorf("%s: not in spec", oc.op)
			continue
		}
		schema := m(m(m(m(m(o.op["responses"])["200"])["content"])[oc.media])["schema"])
		checkType(t, doc, oc.op, typ.Name(), typ, schema)
	}
}

func checkType(t *testing.T, doc specDoc, op, where string, typ reflect.Type, schema map[string]any) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
		if s := doc.resolve(schema); s["items"] != nil {
			schema = m(s["items"])
		}
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() {
		return
	}
	if typ == reflect.TypeFor[Snapshot]() {
		// Snapshot deliberately merges the replica-set and sharded variants,
		// so it is checked against their union, the discriminated DiskBackupSnapshot.
		schema = map[string]any{"$ref": "#/components/schemas/DiskBackupSnapshot"}
	}
	props := doc.properties(schema, map[string]bool{})
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p, ok := props[name]
		if !ok {
			t.Errorf("%s: %s.%s (json %q) is not in the response schema", op, where, f.Name, name)
			continue
		}
		checkType(t, doc, op, where+"."+f.Name, f.Type, p)
	}
}

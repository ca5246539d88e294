package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	instanceMapType = reflect.TypeFor[map[string]InstanceConfig]()
)

// decoder merges a YAML node tree onto Go values, collecting every problem
// with its line and key path instead of stopping at the first.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.file, n.Line, msg))
		return
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s: %s", d.file, n.Line, path, msg))
}

func (d *decoder) decodeDocument(doc *yaml.Node, c *Config) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	d.decode(n, reflect.ValueOf(c).Elem(), "")
}

// decode merges n onto v: fields and map entries absent from n keep their
// current value, which is how a file overrides only what it names.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value keeps the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		// Decode into a copy so a failed decode leaves the default intact
		// and the default's pointee is never shared with the result.
		nv := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			nv.Elem().Set(v.Elem())
		}
		before := len(d.errs)
		d.decode(n, nv.Elem(), path)
		if len(d.errs) == before {
			v.Set(nv)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if !d.expectKind(n, yaml.ScalarNode, path) {
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.expectKind(n, yaml.ScalarNode, path) {
			return
		}
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "invalid integer %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if !d.expectKind(n, yaml.ScalarNode, path) {
			return
		}
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "invalid boolean %q (want true or false)", n.Value)
			return
		}
		v.SetBool(b)
	default:
		// Only reachable if a field of an unsupported type is added to Config.
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) expectKind(n *yaml.Node, want yaml.Kind, path string) bool {
	if n.Kind == want {
		return true
	}
	d.fail(n, path, "expected a %s, got a %s", kindName(want), kindName(n.Kind))
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	default:
		return "document"
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps each accepted key of a struct type (yaml tag, plus an
// optional alias tag) to its field index, and lists the canonical keys for
// error messages.
func structFields(t reflect.Type) (byKey map[string]int, known []string) {
	byKey = make(map[string]int)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		byKey[name] = i
		known = append(known, name)
		if alias := f.Tag.Get("alias"); alias != "" {
			byKey[alias] = i
		}
	}
	sort.Strings(known)
	return byKey, known
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if !d.expectKind(n, yaml.MappingNode, path) {
		return
	}
	byKey, known := structFields(v.Type())
	seen := make(map[int]*yaml.Node) // field index -> key node that set it
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		keyPath := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be plain names")
			continue
		}
		idx, ok := byKey[k.Value]
		if !ok {
			d.fail(k, keyPath, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		if first, dup := seen[idx]; dup {
			d.fail(k, keyPath, "duplicate key (first set by %q at line %d)", first.Value, first.Line)
			continue
		}
		seen[idx] = k
		d.decode(val, v.Field(idx), keyPath)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if !d.expectKind(n, yaml.MappingNode, path) {
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(n.Content)/2))
	}
	isInstances := v.Type() == instanceMapType
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		keyPath := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be plain names")
			continue
		}
		key := k.Value
		if isInstances {
			if builtin, ok := seedInstanceNames[key]; ok {
				key = builtin
			}
		}
		if first, dup := seen[key]; dup {
			d.fail(k, keyPath, "duplicate key (first set by %q at line %d)", first.Value, first.Line)
			continue
		}
		seen[key] = k

		elem := reflect.New(v.Type().Elem()).Elem()
		existing := v.MapIndex(reflect.ValueOf(key))
		switch {
		case existing.IsValid():
			elem.Set(existing)
		case isInstances:
			elem.Set(reflect.ValueOf(InstanceConfig{
				BatchCapacity: DefaultBatchCapacity,
				Timeout:       Duration(DefaultInstanceTimeout),
			}))
		}
		before := len(d.errs)
		d.decode(val, elem, keyPath)
		if len(d.errs) != before {
			continue
		}
		if isInstances && !existing.IsValid() {
			if missing := missingInstanceFields(elem.Interface().(InstanceConfig)); len(missing) > 0 {
				d.fail(k, keyPath, "new instance type must set %s", strings.Join(missing, ", "))
				continue
			}
		}
		v.SetMapIndex(reflect.ValueOf(key), elem)
	}
}

// missingInstanceFields lists what a new instance type cannot take from a
// default: there is no sensible guess for which entities it serves or which
// schema and prompt it runs.
func missingInstanceFields(ic InstanceConfig) []string {
	var missing []string
	if len(ic.EntityTypes) == 0 {
		missing = append(missing, "entity_types")
	}
	if ic.Schema == "" {
		missing = append(missing, "schema")
	}
	if ic.Prompt == "" {
		missing = append(missing, "prompt")
	}
	return missing
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if !d.expectKind(n, yaml.SequenceNode, path) {
		return
	}
	// A list replaces the default rather than extending it: an operator who
	// writes entity_types expects exactly those types.
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	before := len(d.errs)
	for i, item := range n.Content {
		d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	if len(d.errs) == before {
		v.Set(out)
	}
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Source string // file name, "--set" or an environment variable
	Line   int    // YAML line, 0 when unknown
	Key    string // dotted key path, e.g. train.lr
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors lists every problem found in a configuration.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = "  " + p.String()
	}
	noun := "problems"
	if len(e) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("invalid config (%d %s):\n%s", len(e), noun, strings.Join(lines, "\n"))
}

// Options says where a configuration comes from.
type Options struct {
	File string   // YAML file ("" = defaults only)
	Sets []string // key=value overrides, applied last
	Env  []string // environment, as os.Environ(); IMGCAP_<KEY> variables override the file
}

// Load reads, layers, decodes and validates a configuration. Every problem is reported in one
// Errors value.
func Load(opts Options) (Config, error) {
	var probs Errors
	leaves := leafTypes()
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.MergeConfigMap(toMap(Default())); err != nil {
		return Config{}, err
	}
	lines := map[string]int{}
	if opts.File != "" {
		data, err := os.ReadFile(opts.File)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return Config{}, Errors{{Source: opts.File, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
		mapping := false
		if len(root.Content) > 0 {
			doc := root.Content[0]
			if doc.Kind != yaml.MappingNode && !(doc.Kind == yaml.ScalarNode && doc.Tag == "!!null") {
				probs = append(probs, Problem{Source: opts.File, Line: doc.Line, Msg: "the top level must be a mapping of sections (model, data, train, eval, serve)"})
			} else {
				mapping = doc.Kind == yaml.MappingNode
				walkNode(opts.File, doc, "", leaves, lines, &probs)
			}
		}
		if mapping {
			if err := v.MergeConfig(bytes.NewReader(data)); err != nil {
				return Config{}, Errors{{Source: opts.File, Msg: err.Error()}}
			}
		}
	}
	for _, kv := range opts.Env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "IMGCAP_") {
			continue
		}
		key, ok := envKey(name, leaves)
		if !ok {
			continue // other IMGCAP_ variables (e.g. IMGCAP_WORDNET_DIR) are not config keys
		}
		setValue(v, name, key, val, leaves[key], &probs)
	}
	for _, s := range opts.Sets {
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			probs = append(probs, Problem{Source: "--set", Msg: fmt.Sprintf("%q: want key=value", s)})
			continue
		}
		typ, known := leafFor(key, leaves)
		if !known {
			probs = append(probs, Problem{Source: "--set", Key: key, Msg: unknownMsg(key, leaves)})
			continue
		}
		setValue(v, "--set", key, val, typ, &probs)
	}
	var cfg Config
	if err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = false }); err != nil {
		// A key already reported by the schema check is not reported again by the decoder.
		seen := map[string]bool{}
		for _, p := range probs {
			seen[p.Key] = true
		}
		for _, p := range decodeProblems(err, opts.File, lines) {
			if p.Key == "" || !seen[p.Key] {
				probs = append(probs, p)
			}
		}
	}
	// Value checks run even when some keys failed to parse: those keys kept their defaults, and
	// a problem is reported once per key.
	reported := map[string]bool{}
	for _, p := range probs {
		reported[p.Key] = true
	}
	for _, p := range Validate(cfg) {
		if reported[p.Key] {
			continue
		}
		if p.Line == 0 {
			p.Line = lines[p.Key]
		}
		if p.Source == "" && p.Line > 0 {
			p.Source = opts.File
		}
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool {
			if probs[i].Source != probs[j].Source {
				return probs[i].Source < probs[j].Source
			}
			return probs[i].Line < probs[j].Line
		})
		return cfg, probs
	}
	return cfg, nil
}

// setValue parses an override as YAML, checks its type and sets it.
func setValue(v *viper.Viper, source, key, raw string, typ reflect.Type, probs *Errors) {
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &node); err != nil || len(node.Content) == 0 {
		if strings.TrimSpace(raw) == "" && typ.Kind() == reflect.String {
			v.Set(key, "")
			return
		}
		*probs = append(*probs, Problem{Source: source, Key: key, Msg: fmt.Sprintf("value %q is not valid YAML", raw)})
		return
	}
	n := node.Content[0]
	// A bare word given for a string key is a string even when YAML would read it otherwise.
	if typ.Kind() == reflect.String && n.Kind == yaml.ScalarNode {
		v.Set(key, raw)
		return
	}
	if msg := typeMismatch(n, typ); msg != "" {
		*probs = append(*probs, Problem{Source: source, Key: key, Msg: msg})
		return
	}
	var val any
	if err := n.Decode(&val); err != nil {
		*probs = append(*probs, Problem{Source: source, Key: key, Msg: err.Error()})
		return
	}
	v.Set(key, val)
}

// walkNode checks a YAML mapping against the schema: unknown keys and wrong types, with lines.
func walkNode(file string, n *yaml.Node, prefix string, leaves map[string]reflect.Type, lines map[string]int, probs *Errors) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		lines[key] = k.Line
		if typ, ok := leaves[key]; ok {
			if msg := typeMismatch(val, typ); msg != "" {
				*probs = append(*probs, Problem{Source: file, Line: val.Line, Key: key, Msg: msg})
			}
			continue
		}
		if isSection(key, leaves) {
			if val.Kind != yaml.MappingNode && !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
				*probs = append(*probs, Problem{Source: file, Line: val.Line, Key: key, Msg: "want a mapping of keys"})
				continue
			}
			walkNode(file, val, key, leaves, lines, probs)
			continue
		}
		*probs = append(*probs, Problem{Source: file, Line: k.Line, Key: key, Msg: unknownMsg(key, leaves)})
	}
}

// typeMismatch describes why a YAML value does not fit a Go type, or returns "".
func typeMismatch(n *yaml.Node, typ reflect.Type) string {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return ""
	}
	switch typ.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return "want a string, got a " + kindName(n)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return fmt.Sprintf("want true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!float" {
				if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == float64(int64(f)) {
					return ""
				}
			}
			return fmt.Sprintf("want an integer, got %s", describe(n))
		}
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") {
			return fmt.Sprintf("want a number, got %s", describe(n))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Sprintf("want a list, got %s", describe(n))
		}
		for _, item := range n.Content {
			if msg := typeMismatch(item, typ.Elem()); msg != "" {
				return fmt.Sprintf("list item at line %d: %s", item.Line, msg)
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Sprintf("want a mapping, got %s", describe(n))
		}
		for i := 1; i < len(n.Content); i += 2 {
			if msg := typeMismatch(n.Content[i], typ.Elem()); msg != "" {
				return fmt.Sprintf("%s: %s", n.Content[i-1].Value, msg)
			}
		}
	}
	return ""
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}

var quotedKey = regexp.MustCompile(`'([a-z0-9_.\[\]]+)'`)

// decodeProblems turns mapstructure's aggregated error into one Problem per failed key.
func decodeProblems(err error, file string, lines map[string]int) Errors {
	var probs Errors
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		p := Problem{Msg: line}
		if m := quotedKey.FindStringSubmatch(line); m != nil {
			p.Key = m[1]
			p.Msg = strings.TrimSpace(strings.Replace(line, m[0], "", 1))
			if l := lines[p.Key]; l > 0 {
				p.Source, p.Line = file, l
			}
		}
		probs = append(probs, p)
	}
	if len(probs) == 0 {
		probs = Errors{{Msg: err.Error()}}
	}
	return probs
}

// leafTypes maps every settable key path to its Go type.
func leafTypes() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key)
				continue
			}
			out[key] = f.Type
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// Keys lists every settable key path, sorted.
func Keys() []string {
	leaves := leafTypes()
	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// leafFor finds the type of key, including entries of map-typed keys (data.split_files.train).
func leafFor(key string, leaves map[string]reflect.Type) (reflect.Type, bool) {
	if t, ok := leaves[key]; ok {
		return t, true
	}
	if i := strings.LastIndex(key, "."); i > 0 {
		if t, ok := leaves[key[:i]]; ok && t.Kind() == reflect.Map {
			return t.Elem(), true
		}
	}
	return nil, false
}

func isSection(key string, leaves map[string]reflect.Type) bool {
	for k := range leaves {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// envKey maps IMGCAP_TRAIN_BATCH_SIZE to train.batch_size.
func envKey(name string, leaves map[string]reflect.Type) (string, bool) {
	want := strings.TrimPrefix(name, "IMGCAP_")
	for k := range leaves {
		if strings.ToUpper(strings.ReplaceAll(k, ".", "_")) == want {
			return k, true
		}
	}
	return "", false
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return "IMGCAP_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func unknownMsg(key string, leaves map[string]reflect.Type) string {
	best, bestD := "", 4
	for k := range leaves {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key (did you mean %s?)", best)
	}
	return "unknown key"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// toMap converts a Config to the nested map viper layers.
func toMap(c Config) map[string]any {
	data, err := yaml.Marshal(c)
	if err != nil {
		panic(err) // a Config always marshals
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		panic(err)
	}
	return m
}

// YAML renders a configuration as YAML, the form `imgcap config show` prints and runs save.
func YAML(c Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// ErrNoConfig is returned by commands that need --config when none is given.
var ErrNoConfig = errors.New("no config: pass --config FILE")

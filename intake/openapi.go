package intake

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"gopkg.in/yaml.v3"
)

// The OpenAPI 3.1 description of every route (openapi.yaml, the source),
// served as JSON at GET /openapi.json. It is converted once, when the
// first server is built (NewServer), keeping the file's order of members
// and expanding its YAML anchors; a file that does not convert is a bug
// caught by every test that builds a server, so OpenAPIJSON panics on it
// rather than serve half a document.

//go:embed openapi.yaml
var openAPIYAML []byte

var openAPIJSON = sync.OnceValues(func() ([]byte, error) { return yamlToJSON(openAPIYAML) })

// OpenAPIJSON is the API's OpenAPI document as JSON, as GET /openapi.json
// answers it.
func OpenAPIJSON() []byte {
	b, err := openAPIJSON()
	if err != nil {
		panic("intake/openapi.yaml: " + err.Error())
	}
	return b
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	writeRaw(w, http.StatusOK, OpenAPIJSON())
	return nil
}

// Routes lists the pattern of every route the server registered
// ("GET /v1/payments", …), in routes.go's order; the catch-all "/" is
// last. The OpenAPI test compares them with the document's paths.
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

// yamlToJSON converts a YAML document to JSON with the members in the
// file's order (a map would sort them), expanding aliases. Only what JSON
// can say is accepted: string keys and the core scalar tags.
func yamlToJSON(src []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeNode(&buf, &doc, 0); err != nil {
		return nil, err
	}
	// Indented, so that a reader of /openapi.json can follow it.
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeNode(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > 100 {
		return fmt.Errorf("line %d: nested too deeply", n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("want one document, have %d", len(n.Content))
		}
		return writeNode(buf, n.Content[0], depth+1)
	case yaml.AliasNode:
		return writeNode(buf, n.Alias, depth+1)
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return fmt.Errorf("line %d: only scalar keys (no merge keys)", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			seen[k.Value] = true
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeNode(buf, v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, v := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeNode(buf, v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			b, _ := json.Marshal(n.Value)
			buf.Write(b)
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return fmt.Errorf("line %d: number %q: %v", n.Line, n.Value, err)
			}
			b, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("line %d: number %q: %v", n.Line, n.Value, err)
			}
			buf.Write(b)
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %v", n.Line, err)
			}
			buf.WriteString(strconv.FormatBool(v))
		case "!!null":
			buf.WriteString("null")
		default:
			return fmt.Errorf("line %d: unsupported tag %s", n.Line, n.ShortTag())
		}
	default:
		return fmt.Errorf("line %d: unsupported node", n.Line)
	}
	return nil
}

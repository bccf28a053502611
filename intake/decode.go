package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting, so a hostile body cannot make the decoder
// work hard.
const maxDepth = 16

// readBody reads a request body under the size limit. Oversized bodies are
// 413; a Content-Type other than JSON is 415.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errf(http.StatusUnsupportedMediaType, typeMediaType, "content_type_unsupported",
				"send the body as application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, typeTooLarge, "body_too_large",
				fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBodyBytes))
		}
		return nil, errf(http.StatusBadRequest, typeInvalidRequest, "body_unreadable", "the request body could not be read")
	}
	return body, nil
}

// decode parses a JSON object strictly into v: malformed JSON, a
// non-object, trailing data, duplicate keys, excessive nesting and invalid
// UTF-8 are 400; NUL characters, unknown fields and wrong types are 422 with
// the field named. It never panics on any input (fuzzed).
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errf(http.StatusBadRequest, typeInvalidRequest, "body_empty", "a JSON object body is required")
	}
	if !utf8.Valid(body) {
		return errf(http.StatusBadRequest, typeInvalidRequest, "body_invalid_utf8", "the body is not valid UTF-8")
	}
	if err := scan(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			f := te.Field
			if f == "" {
				return errf(http.StatusBadRequest, typeInvalidRequest, "body_not_object", "the body must be a JSON object")
			}
			return validation(map[string]string{f: fieldCode(f) + "_invalid_type"})
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return validation(map[string]string{name: "unknown_field"})
		}
		return errf(http.StatusBadRequest, typeInvalidRequest, "body_malformed", "the body is not valid JSON")
	}
	return nil
}

// fieldCode turns a decoder field path (metadata.x, lines.0.amount) into the
// field name used in error codes.
func fieldCode(path string) string {
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return path
}

// scan walks the token stream once: the body must be one JSON object with
// no duplicate keys at any level, no NUL characters in any string, and
// bounded nesting.
func scan(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	malformed := errf(http.StatusBadRequest, typeInvalidRequest, "body_malformed", "the body is not valid JSON")
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // next string token in this object is a key
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformed
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errf(http.StatusBadRequest, typeInvalidRequest, "body_not_object", "the body must be a JSON object")
			}
			first = false
		} else if len(stack) == 0 {
			return errf(http.StatusBadRequest, typeInvalidRequest, "body_trailing_data", "the body has data after the JSON object")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.object && top.key
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				if len(stack) >= maxDepth {
					return errf(http.StatusBadRequest, typeInvalidRequest, "body_too_deep", "the body nests too deeply")
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, key: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if strings.IndexByte(t, 0) >= 0 {
				return validation(map[string]string{"body": "string_contains_nul"})
			}
			if isKey {
				if top.keys[t] {
					return errf(http.StatusBadRequest, typeInvalidRequest, "body_duplicate_key",
						"the body repeats the key "+quoteShort(t))
				}
				top.keys[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
	if first || len(stack) != 0 {
		return malformed
	}
	return nil
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, ""))
}

// decimal holds the raw text of a JSON amount: a number literal or the
// content of a string, never converted through float64.
type decimal struct {
	Raw   string
	Set   bool // the field was present
	Kind  byte // 'n' number, 's' string, 'x' any other JSON type
	IsNul bool // JSON null
}

func (d *decimal) UnmarshalJSON(b []byte) error {
	d.Set = true
	switch {
	case len(b) == 0:
		d.Kind = 'x'
	case string(b) == "null":
		d.IsNul = true
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			d.Kind = 'x'
			return nil
		}
		d.Raw, d.Kind = s, 's'
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		d.Raw, d.Kind = string(b), 'n'
	default:
		d.Kind = 'x'
	}
	return nil
}

// MarshalJSON writes the fingerprinted form.
func (d decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.Raw) }

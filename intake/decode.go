package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxDepth bounds JSON nesting, so a hostile body cannot make the decoder
// work hard.
const maxDepth = 16

// readBody reads a request body under the size limit. Oversized bodies are
// 413; a Content-Type other than JSON is 415.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return s.readBodyLimit(w, r, s.cfg.MaxBodyBytes)
}

// readBodyLimit is readBody with its own size limit.
func (s *Server) readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errf(http.StatusUnsupportedMediaType, typeMediaType, "content_type_unsupported",
				"send the body as application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, typeTooLarge, "body_too_large",
				fmt.Sprintf("the body exceeds %d bytes", limit))
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
	if err := scan(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			f := memberPath(te.Field, reflect.TypeOf(v))
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

// memberPath is a decoder field path as the body names it: encoding/json
// also names each embedded struct a member is promoted from (by its Go
// name), which the body never does. (The path names struct members only:
// no slice index, no map key.)
func memberPath(path string, t reflect.Type) string {
	var out []string
	for _, seg := range strings.Split(path, ".") {
		for t != nil && t.Kind() != reflect.Struct {
			switch t.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
				t = t.Elem()
			default:
				t = nil
			}
		}
		if t != nil {
			if f, ok := t.FieldByName(seg); ok && f.Anonymous && jsonName(f) == "" {
				t = f.Type
				continue
			}
			t = jsonFields(t)[seg]
		}
		out = append(out, seg)
	}
	return strings.Join(out, ".")
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
// bounded nesting. It also follows the Go type the body decodes into, and
// refuses a member of a struct whose name is not exactly a field's JSON
// name: encoding/json matches names case-insensitively, so {"amount":"1",
// "Amount":"999"} would otherwise pass the duplicate check and decode as 999.
func scan(body []byte, typ reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	malformed := errf(http.StatusBadRequest, typeInvalidRequest, "body_malformed", "the body is not valid JSON")
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool         // next string token in this object is a key
		typ    reflect.Type // what this container decodes into; nil: not checked
		next   reflect.Type // what the next value in it decodes into
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
				ct := typ
				if top != nil {
					ct = top.next
				}
				f := &frame{object: t == '{', keys: map[string]bool{}, key: t == '{', typ: checked(ct)}
				if !f.object && f.typ != nil && (f.typ.Kind() == reflect.Slice || f.typ.Kind() == reflect.Array) {
					f.next = f.typ.Elem()
				}
				stack = append(stack, f)
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
				top.next = nil
				if top.typ != nil {
					switch top.typ.Kind() {
					case reflect.Map:
						top.next = top.typ.Elem()
					case reflect.Struct:
						ft, ok := jsonFields(top.typ)[t]
						if !ok {
							return validation(map[string]string{truncate(t, 100): "unknown_field"})
						}
						top.next = ft
					}
				}
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

// checked returns the type whose member names scan checks (a struct, or a
// map or slice whose elements may hold structs), with pointers removed; nil
// for anything decoded another way (interfaces, custom unmarshalers).
func checked(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return t
	}
	return nil
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	fieldCache      sync.Map // reflect.Type → map[string]reflect.Type
)

// jsonFields lists a struct's JSON member names, exactly as encoding/json
// writes them, with the type each decodes into.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "":
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, dup := m[k]; !dup {
						m[k] = v
					}
				}
				continue
			}
			if !f.IsExported() {
				continue
			}
		case !f.IsExported():
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

// jsonName is the member name in a field's json tag; "" for none.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, ""))
}

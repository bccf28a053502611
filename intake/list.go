package intake

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Lists: newest first, a page of at most limit (1–100, default 20) after the
// cursor starting_after, each route with its own filters.
//
//	q := parseListQuery(r)
//	f := store.ThingFilter{TenantID: p.TenantID, Limit: q.limit, StartingAfter: q.after}
//	if st := q.Get("status"); st != "" && !known[st] {
//		q.bad["status"] = "status_invalid"
//	}
//	return writeList(w, r, q, thingExists, func(ctx context.Context) ([]payment.Thing, bool, error) {
//		return s.store.ListThings(ctx, f)
//	}, toThingResponse)

// listResponse is every list's answer.
type listResponse struct {
	Object  string `json:"object"`
	Data    any    `json:"data"`
	HasMore bool   `json:"has_more"`
}

// listQuery is a list route's query: limit and starting_after, checked,
// and the rest for the route's own filters. bad holds one error code per
// bad parameter; a route adds its own.
type listQuery struct {
	url.Values
	limit int
	after string
	bad   map[string]string
}

// parseListQuery reads limit and starting_after.
func parseListQuery(r *http.Request) listQuery {
	q := listQuery{Values: r.URL.Query(), limit: 20, bad: map[string]string{}}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			q.bad["limit"] = "limit_invalid"
		}
		q.limit = n
	}
	q.after = q.Get("starting_after")
	if len(q.after) > 100 {
		q.bad["starting_after"] = "starting_after_invalid"
	}
	return q
}

// writeList answers a list route: a 422 for any bad parameter, or for a
// starting_after that names none of the tenant's objects (exists); else the
// page that page loads, each item as show writes it.
func writeList[T, R any](w http.ResponseWriter, r *http.Request, q listQuery,
	exists func(ctx context.Context, id string) (bool, error),
	page func(ctx context.Context) ([]T, bool, error), show func(T) R) error {
	if len(q.bad) > 0 {
		return validation(q.bad)
	}
	if err := cursorExists(r.Context(), q.after, exists); err != nil {
		return err
	}
	items, more, err := page(r.Context())
	if err != nil {
		return err
	}
	out := make([]R, len(items))
	for i, it := range items {
		out[i] = show(it)
	}
	writeJSON(w, http.StatusOK, listResponse{Object: "list", Data: out, HasMore: more})
	return nil
}

// cursorExists checks a list's starting_after cursor: empty, or an object
// of the tenant that exists; else a 422. An id no object can have (NUL,
// invalid UTF-8) never reaches Postgres, which would refuse it as text.
func cursorExists(ctx context.Context, after string, exists func(context.Context, string) (bool, error)) error {
	if after == "" {
		return nil
	}
	ok := validID(after)
	if ok {
		var err error
		if ok, err = exists(ctx, after); err != nil {
			return err
		}
	}
	if !ok {
		return validation(map[string]string{"starting_after": "starting_after_not_found"})
	}
	return nil
}

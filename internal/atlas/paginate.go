package atlas

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"net/url"
	"strconv"
	"strings"
)

// pages iterates over every item of a list endpoint, fetching pages lazily.
//
// paged endpoints are asked for itemsPerPage=500 (the maximum) and pageNum
// 1, 2, ...; the walk stops at the first empty or short page, once
// totalCount items were seen, or when the response has links but none with
// rel "next". Endpoints without paging parameters (sharded snapshots) get a
// plain first request, and further pages only if the server offers a "next"
// link for the same path; only that link's query is used, never its host.
//
// Either way the walk is bounded (bounds.go): each page by MaxPageBytes and
// MaxPageElements, the pages together by MaxListingBytes and
// MaxListingElements, their number by MaxListingPages; a "next" link back to
// a page already read fails at once. Past a bound the walk yields a
// *BoundError rather than a shortened list, which a caller reconciling by
// listing would take as complete.
func pages[T any](ctx context.Context, c *Client, r request, paged bool) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		seen := 0
		left := answerUse{bytes: c.caps.listingBytes, elements: c.caps.listingElements}
		query := maps.Clone(r.query)
		if query == nil {
			query = url.Values{}
		}
		// asked maps each query sent (unpaged walks) to its page number.
		asked := map[string]int{}
		for page := 1; ; page++ {
			if page > c.caps.listingPages {
				yield(zero, listingError(r, &BoundError{Operation: r.op, Listing: true, Limit: int64(c.caps.listingPages), Unit: "pages",
					Note: fmt.Sprintf("%d items read and the server keeps offering more", seen)}))
				return
			}
			if paged {
				query.Set("itemsPerPage", strconv.Itoa(MaxItemsPerPage))
				query.Set("pageNum", strconv.Itoa(page))
				query.Set("includeCount", "true")
			} else {
				key := query.Encode()
				if before, ok := asked[key]; ok {
					yield(zero, listingError(r, &BoundError{Operation: r.op, Listing: true, Limit: int64(page - 1), Unit: "pages",
						Note: fmt.Sprintf("the next link of page %d leads back to page %d, so the list would never end", page-1, before)}))
					return
				}
				asked[key] = page
			}
			rq := r
			rq.query = query
			rq.bound = c.caps.page(r.op, page, left)
			var p Page[T]
			used, err := c.doRead(ctx, &rq, &p)
			if err != nil {
				yield(zero, err)
				return
			}
			left.bytes -= used.bytes
			left.elements -= used.elements
			for _, item := range p.Results {
				if !yield(item, nil) {
					return
				}
			}
			seen += len(p.Results)
			if paged {
				if !morePages(p.Results, p.TotalCount, p.Links, seen) {
					return
				}
				continue
			}
			next, ok := nextQuery(p.Links, r.path)
			if !ok || len(p.Results) == 0 || (p.TotalCount > 0 && seen >= p.TotalCount) {
				return
			}
			query = next
		}
	}
}

// listingError is the call's *Error for a listing stopped by a bound.
func listingError(r request, b *BoundError) *Error {
	return &Error{Operation: r.op, Method: r.method, Path: r.path, Err: b}
}

func morePages[T any](results []T, total int, links []Link, seen int) bool {
	switch {
	case len(results) < MaxItemsPerPage:
		return false
	case total > 0 && seen >= total:
		return false
	case len(links) > 0 && !hasRel(links, "next"):
		return false
	}
	return true
}

func hasRel(links []Link, rel string) bool {
	for _, l := range links {
		if strings.EqualFold(l.Rel, rel) {
			return true
		}
	}
	return false
}

// nextQuery returns the query of a "next" link that points at path (the
// link's host and any base-path prefix are ignored: requests always go to the
// configured base URL).
func nextQuery(links []Link, path string) (url.Values, bool) {
	for _, l := range links {
		if !strings.EqualFold(l.Rel, "next") {
			continue
		}
		u, err := url.Parse(l.Href)
		if err != nil || !strings.HasSuffix(u.EscapedPath(), path) {
			return nil, false
		}
		return u.Query(), true
	}
	return nil, false
}

// collect drains a list iterator into a slice, stopping at the first error.
func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for item, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// failed is an iterator that yields only err (for arguments rejected before any request).
func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

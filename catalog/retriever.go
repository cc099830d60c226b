package catalog

import (
	"context"
	"time"
)

// SortOrder orders retrieval results.
type SortOrder int

const (
	SortByQuality SortOrder = iota // quality desc, then freshness
	SortByFresh                    // published_at desc
)

// Query is a retrieval request a recall branch sends to the catalog index:
// candidates matching any of Tags/Categories/Uploaders (all empty: any),
// allowed in Region, published within [PublishedAfter, PublishedBefore].
type Query struct {
	Tags            []string
	Categories      []string
	Uploaders       []string
	Region          string
	PublishedAfter  time.Time // zero: unbounded
	PublishedBefore time.Time // zero: unbounded
	Sort            SortOrder
	Limit           int
}

// Retriever finds candidate video ids for a query. The in-memory Catalog is
// one; Elasticsearch is the other, for catalogs that outgrow a replica.
type Retriever interface {
	Name() string
	Search(ctx context.Context, q Query) ([]string, error)
}

package model

import (
	"errors"
	"fmt"
	"math"
)

// Example is one labelled input: for each field, the hashed feature ids
// present (several ids in one field are averaged, e.g. a video's tags).
type Example struct {
	Fields [][]uint32
	Label  float32 // in [0, 1]
	TS     int64   // event time (Unix nanoseconds), for time-based splits
}

// Dataset stores examples compactly (all ids in one array, offsets in
// another), so millions of samples cost tens of bytes each rather than a
// slice header per field. A Dataset made by Slice is a read-only view.
type Dataset struct {
	fields int
	ids    []uint32
	// offs[0] is 0 and each example appends one end offset per field, so
	// example i's field f is ids[offs[i*fields+f] : offs[i*fields+f+1]].
	offs   []uint32
	labels []float32
	ts     []int64
	lo, hi int
	view   bool
}

// NewDataset returns an empty dataset of examples with the given number
// of fields.
func NewDataset(fields int) *Dataset {
	return &Dataset{fields: fields}
}

// Fields is the number of fields of every example.
func (d *Dataset) Fields() int { return d.fields }

// Len is the number of examples.
func (d *Dataset) Len() int { return d.hi - d.lo }

// Add appends a copy of ex.
func (d *Dataset) Add(ex Example) error {
	if d.view {
		return errors.New("model: cannot add to a dataset view")
	}
	if len(ex.Fields) != d.fields {
		return fmt.Errorf("%w: got %d, want %d", ErrFieldCount, len(ex.Fields), d.fields)
	}
	if !(ex.Label >= 0 && ex.Label <= 1) {
		return fmt.Errorf("model: label %v outside [0, 1]", ex.Label)
	}
	n := 0
	for _, f := range ex.Fields {
		n += len(f)
	}
	if uint64(len(d.ids))+uint64(n) > math.MaxUint32 {
		return errors.New("model: dataset is full")
	}
	if len(d.offs) == 0 {
		d.offs = append(d.offs, 0)
	}
	for _, f := range ex.Fields {
		d.ids = append(d.ids, f...)
		d.offs = append(d.offs, uint32(len(d.ids)))
	}
	d.labels = append(d.labels, ex.Label)
	d.ts = append(d.ts, ex.TS)
	d.hi++
	return nil
}

// Slice returns a view of examples [lo, hi) of d.
func (d *Dataset) Slice(lo, hi int) *Dataset {
	if lo < 0 || hi < lo || hi > d.Len() {
		panic(fmt.Sprintf("model: dataset slice [%d:%d] out of range [0:%d]", lo, hi, d.Len()))
	}
	v := *d
	v.lo, v.hi = d.lo+lo, d.lo+hi
	v.view = true
	return &v
}

// Label returns example i's label.
func (d *Dataset) Label(i int) float32 { return d.labels[d.lo+i] }

// TS returns example i's time.
func (d *Dataset) TS(i int) int64 { return d.ts[d.lo+i] }

// Example returns example i; its field slices alias the dataset's storage
// and dst (reused when it has capacity for every field).
func (d *Dataset) Example(i int, dst [][]uint32) Example {
	return Example{Fields: d.fieldsOf(i, dst), Label: d.Label(i), TS: d.TS(i)}
}

func (d *Dataset) fieldsOf(i int, dst [][]uint32) [][]uint32 {
	if cap(dst) < d.fields {
		dst = make([][]uint32, d.fields)
	}
	dst = dst[:d.fields]
	base := (d.lo + i) * d.fields
	offs := d.offs[base : base+d.fields+1]
	for f := range dst {
		dst[f] = d.ids[offs[f]:offs[f+1]:offs[f+1]]
	}
	return dst
}

package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
)

// File format, all integers little-endian:
//
//	magic    [8]byte "RFMODEL\x00"
//	version  uint32 (formatVersion)
//	kind     uint32
//	fields   uint32
//	buckets  uint32
//	dim      uint32
//	initStd  float32
//	seed     uint64
//	nhidden  uint32, then nhidden × uint32 sizes
//	metaLen  uint32, then metaLen bytes of metadata
//	nparams  uint64, then nparams × float32
//	crc      uint32: CRC-32C of every byte before it
//
// A reader checks every size against the limits before allocating and the
// checksum before returning, so a truncated or corrupted file is an error.
const formatVersion = 1

var magic = [8]byte{'R', 'F', 'M', 'O', 'D', 'E', 'L', 0}

// MaxMeta bounds the metadata saved with a model.
const MaxMeta = 1 << 20

// ErrCorrupt wraps every error caused by a malformed model file.
var ErrCorrupt = errors.New("model: corrupt model file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the model in the versioned binary format.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	bw := &countingWriter{w: bufio.NewWriterSize(w, 1<<16), crc: crc32.New(castagnoli)}
	c := m.cfg
	bw.bytes(magic[:])
	bw.u32(formatVersion)
	bw.u32(uint32(c.Kind))
	bw.u32(uint32(c.Fields))
	bw.u32(c.Buckets)
	bw.u32(uint32(c.Dim))
	bw.u32(math.Float32bits(c.InitStd))
	bw.u64(c.Seed)
	bw.u32(uint32(len(c.Hidden)))
	for _, h := range c.Hidden {
		bw.u32(uint32(h))
	}
	bw.u32(uint32(len(m.meta)))
	bw.bytes(m.meta)
	bw.u64(uint64(len(m.params)))
	var buf [4096]byte
	for i := 0; i < len(m.params); {
		n := 0
		for ; n+4 <= len(buf) && i < len(m.params); i++ {
			binary.LittleEndian.PutUint32(buf[n:], math.Float32bits(m.params[i]))
			n += 4
		}
		bw.bytes(buf[:n])
	}
	bw.u32NoCRC(bw.crc.Sum32())
	if bw.err == nil {
		bw.err = bw.w.Flush()
	}
	return bw.n, bw.err
}

type countingWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	err error
	tmp [8]byte
}

func (w *countingWriter) bytes(b []byte) {
	if w.err != nil {
		return
	}
	w.crc.Write(b)
	var n int
	n, w.err = w.w.Write(b)
	w.n += int64(n)
}

func (w *countingWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.tmp[:4], v)
	w.bytes(w.tmp[:4])
}

func (w *countingWriter) u64(v uint64) {
	binary.LittleEndian.PutUint64(w.tmp[:8], v)
	w.bytes(w.tmp[:8])
}

func (w *countingWriter) u32NoCRC(v uint32) {
	if w.err != nil {
		return
	}
	binary.LittleEndian.PutUint32(w.tmp[:4], v)
	var n int
	n, w.err = w.w.Write(w.tmp[:4])
	w.n += int64(n)
}

// Read reads a model written by WriteTo. Any malformed input — truncated,
// bit-flipped, from a newer format version, or simply not a model — is an
// error wrapping ErrCorrupt.
func Read(r io.Reader) (*Model, error) {
	return read(bufio.NewReaderSize(r, 1<<16), -1)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

type crcReader struct {
	r   io.Reader
	crc hash.Hash32
	tmp [8]byte
	n   int64
}

func (r *crcReader) full(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.n += int64(n)
	r.crc.Write(b[:n])
	if err != nil {
		return corrupt("truncated after %d bytes", r.n)
	}
	return nil
}

func (r *crcReader) u32() (uint32, error) {
	if err := r.full(r.tmp[:4]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(r.tmp[:4]), nil
}

func (r *crcReader) u64() (uint64, error) {
	if err := r.full(r.tmp[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(r.tmp[:8]), nil
}

// read parses a model; size, when known (>= 0), is the input's total
// length, checked against the header before the parameters are allocated.
func read(br io.Reader, size int64) (*Model, error) {
	r := &crcReader{r: br, crc: crc32.New(castagnoli)}
	var head [8]byte
	if err := r.full(head[:]); err != nil {
		return nil, err
	}
	if head != magic {
		return nil, corrupt("not a reelfeed model file")
	}
	var h [6]uint32
	for i := range h {
		v, err := r.u32()
		if err != nil {
			return nil, err
		}
		h[i] = v
	}
	if h[0] != formatVersion {
		return nil, corrupt("unsupported format version %d (this build reads %d)", h[0], formatVersion)
	}
	seed, err := r.u64()
	if err != nil {
		return nil, err
	}
	cfg := Config{
		Kind:    Kind(h[1]),
		Fields:  int(h[2]),
		Buckets: h[3],
		Dim:     int(h[4]),
		InitStd: math.Float32frombits(h[5]),
		Seed:    seed,
	}
	if cfg.Kind > DeepFM || h[2] > MaxFields || h[4] > MaxDim {
		return nil, corrupt("implausible header")
	}
	nh, err := r.u32()
	if err != nil {
		return nil, err
	}
	if nh > MaxLayers {
		return nil, corrupt("%d hidden layers", nh)
	}
	for range nh {
		v, err := r.u32()
		if err != nil {
			return nil, err
		}
		if v > MaxLayerSize {
			return nil, corrupt("hidden layer of %d units", v)
		}
		cfg.Hidden = append(cfg.Hidden, int(v))
	}
	if err := cfg.Validate(); err != nil {
		return nil, corrupt("%v", err)
	}
	if cfg.normalized().Dim != cfg.Dim || (cfg.Kind != DeepFM && len(cfg.Hidden) > 0) {
		return nil, corrupt("header fields unused by a %s model are set", cfg.Kind)
	}
	metaLen, err := r.u32()
	if err != nil {
		return nil, err
	}
	if metaLen > MaxMeta {
		return nil, corrupt("%d bytes of metadata", metaLen)
	}
	want := cfg.paramCount()
	if size >= 0 {
		// header so far + meta + nparams + params + crc
		if total := uint64(r.n) + uint64(metaLen) + 8 + 4*want + 4; uint64(size) != total {
			return nil, corrupt("file is %d bytes, its header implies %d", size, total)
		}
	}
	var meta []byte
	if metaLen > 0 {
		meta = make([]byte, metaLen)
		if err := r.full(meta); err != nil {
			return nil, err
		}
	}
	np, err := r.u64()
	if err != nil {
		return nil, err
	}
	if np != want {
		return nil, corrupt("%d parameters, the architecture needs %d", np, want)
	}
	// Read in chunks so a truncated stream fails before a huge allocation
	// is filled in, and so the buffer stays small.
	m := alloc(cfg)
	m.meta = meta
	var buf [1 << 15]byte
	for i := 0; i < len(m.params); {
		n := min(len(buf), 4*(len(m.params)-i))
		if err := r.full(buf[:n]); err != nil {
			return nil, err
		}
		for k := 0; k < n; k += 4 {
			m.params[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[k:]))
			i++
		}
	}
	sum := r.crc.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(br, tail[:]); err != nil {
		return nil, corrupt("missing checksum")
	}
	if got := binary.LittleEndian.Uint32(tail[:]); got != sum {
		return nil, corrupt("checksum mismatch")
	}
	if n, _ := br.Read(tail[:1]); n != 0 {
		return nil, corrupt("trailing data after checksum")
	}
	for _, p := range m.params {
		if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) {
			return nil, corrupt("non-finite parameter")
		}
	}
	m.refreshDerived()
	return m, nil
}

// Load reads a model file written by Save.
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m, err := read(bufio.NewReaderSize(f, 1<<16), st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Save writes the model to path atomically: to a temporary file in the same
// directory, fsynced, then renamed over path, and the directory fsynced, so
// a reader sees either the old file or the complete new one, even across a
// crash.
func (m *Model) Save(path string) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := m.WriteTo(w)
		return err
	})
}

// WriteFileAtomic creates path with the content write produces, atomically
// (temporary file, fsync, rename, directory fsync).
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

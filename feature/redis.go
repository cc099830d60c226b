package feature

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/event"
)

// Redis layout, per video, both keys under the video's hash tag so one
// script touches one Redis Cluster slot:
//
//	<prefix>f:{<video>}   hash: n = newest minute bucket applied (decimal),
//	                      p = when the zset is next pruned (ms, decimal),
//	                      l = lifetime counts, m<minute> / h<hour> = bucket
//	                      counts (bucket indexes in decimal). Counts are
//	                      packed binary: one 6-byte little-endian unsigned
//	                      integer per event.Type in storage order (exact to
//	                      2.8e14), trailing zero types left out. Binary
//	                      because Lua's number formatting and parsing cost
//	                      more than the rest of the script.
//	<prefix>fd:{<video>}  zset: applied-event keys (8-byte dedupeKey),
//	                      scored by apply time in ms. Pruned of keys older
//	                      than DedupeTTL at most once per DedupeTTL/8 of
//	                      writes, so a key is remembered for DedupeTTL to
//	                      DedupeTTL*9/8 (as in the memory backend); the zset
//	                      expires when the video is idle that long.
//
// The rings keep at most 90 minute and 25 hour fields, and a packed value
// is at most 54 bytes for 9 types, so a hash stays in Redis's compact listpack
// encoding (128 entries of up to 64 bytes by default).
const countBytes = 6

const applyScript = `
local now = ARGV[1]
local minuteRing, hourRing, ntypes = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local stride = 5

-- Counts are packed without trailing zero types: most buckets only ever
-- see impressions and plays.
local formats = {}
local function format(k)
  local f = formats[k]
  if not f then
    f = '<' .. string.rep('I6', k)
    formats[k] = f
  end
  return f
end
local function pack(c)
  local k = ntypes
  while k > 1 and c[k] == 0 do k = k - 1 end
  return struct.pack(format(k), unpack(c, 1, k))
end

-- Applies the events in ARGV[first..last] to one video's keys.
local function applyVideo(key, dkey, first, last)
  -- One read for the video's state and every field the events may touch.
  local names, named = {'n', 'p', 'l'}, {}
  for i = first, last, stride do
    for j = i + 3, i + 4 do
      local f = ARGV[j]
      if not named[f] then
        named[f] = true
        names[#names + 1] = f
      end
    end
  end
  local values = redis.call('HMGET', key, unpack(names))
  local stored = {}
  for k = 3, #names do stored[names[k]] = values[k] end
  local newest = values[1] and tonumber(values[1])

  -- The applied-event set is pruned, and its expiry pushed back, once per
  -- maintenance period rather than on every write.
  local maintain = not values[2] or tonumber(now) >= tonumber(values[2])
  if maintain then redis.call('ZREMRANGEBYSCORE', dkey, '-inf', ARGV[2]) end

  local fresh = {}
  for i = first, last, stride do
    if redis.call('ZADD', dkey, 'NX', now, ARGV[i]) == 1 then fresh[#fresh + 1] = i end
  end
  if #fresh == 0 then return 0 end
  if maintain then redis.call('PEXPIRE', dkey, ARGV[3]) end

  local counts = {}
  local function bump(f, t)
    local c = counts[f]
    if not c then
      c = {}
      for k = 1, ntypes do c[k] = 0 end
      local s = stored[f]
      local k = s and math.min(math.floor(#s / 6), ntypes) or 0
      if k > 0 then
        local unpacked = {struct.unpack(format(k), s)}
        for j = 1, k do c[j] = unpacked[j] end
      end
      counts[f] = c
    end
    c[t] = c[t] + 1
  end

  local function dropRange(prefix, from, to)
    if from > to then return end
    local dead = {}
    for j = from, to do
      local f = prefix .. j
      dead[#dead + 1] = f
      counts[f] = nil
    end
    redis.call('HDEL', key, unpack(dead))
  end

  -- Drops every bucket field at or before the given minute and hour
  -- buckets, listing the hash: cheaper than naming a long range of mostly
  -- absent fields.
  local function dropListed(lastMinute, lastHour)
    local function isDead(f)
      local p = string.sub(f, 1, 1)
      if p ~= 'm' and p ~= 'h' then return false end
      local idx = tonumber(string.sub(f, 2))
      if not idx then return false end
      if p == 'm' then return idx <= lastMinute end
      return idx <= lastHour
    end
    local dead = {}
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if isDead(f) then dead[#dead + 1] = f end
    end
    for f in pairs(counts) do
      if isDead(f) then counts[f] = nil end
    end
    if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  end

  -- Moving the newest bucket forward prunes the buckets that leave the
  -- rings: by name for a step of a few minutes (the steady state of a busy
  -- video), else by listing the hash.
  local function advance(m)
    if newest then
      local lastMinute, lastHour = m - minuteRing, math.floor(m / 60) - hourRing
      if m - newest <= 4 then
        dropRange('m', newest - minuteRing + 1, lastMinute)
        dropRange('h', math.floor(newest / 60) - hourRing + 1, lastHour)
      else
        dropListed(lastMinute, lastHour)
      end
    end
    newest = m
  end

  for _, i in ipairs(fresh) do
    local t = tonumber(ARGV[i + 1]) + 1
    local m = tonumber(ARGV[i + 2])
    if not newest or m > newest then advance(m) end
    bump('l', t)
    if m > newest - minuteRing then bump(ARGV[i + 3], t) end
    if math.floor(m / 60) > math.floor(newest / 60) - hourRing then bump(ARGV[i + 4], t) end
  end

  local args = {'n', string.format('%d', newest)}
  if maintain then
    args[#args + 1] = 'p'
    args[#args + 1] = ARGV[4]
  end
  for f, c in pairs(counts) do
    args[#args + 1] = f
    args[#args + 1] = pack(c)
  end
  redis.call('HSET', key, unpack(args))
  return #fresh
end

-- KEYS holds (counters, applied set) per video; ARGV after the header holds
-- per video its event count, then that many (member, type, minute, minute
-- field, hour field).
local applied, pos = 0, 8
for v = 1, #KEYS, 2 do
  local n = tonumber(ARGV[pos])
  applied = applied + applyVideo(KEYS[v], KEYS[v + 1], pos + 1, pos + n * stride)
  pos = pos + 1 + n * stride
end
return applied
`

// Redis is the Store shared by replicas. Apply is one pipelined round trip
// of scripts that atomically check and mark event ids and increment the
// counters: one video per script on a Cluster or Ring client (a script may
// touch one slot), several videos per script on a single server. Get is one pipelined round trip for the ids
// the in-process cache does not hold; the cache serves an entry for at most
// Config.CacheTTL after it was fetched, so a read may miss the last
// CacheTTL of writes (this process's own included) but never older.
type Redis struct {
	client redis.UniversalClient
	prefix string
	cfg    Config
	apply  *redis.Script
	cache  *statsCache      // nil when CacheTTL is 0
	now    func() time.Time // wall clock for dedupe and cache ages
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store keeping its data under prefix on client. The
// client stays the caller's: Close does not close it. A DedupeTTL <= 0
// means the default; CacheTTL 0 disables the cache.
func NewRedis(client redis.UniversalClient, prefix string, cfg Config) *Redis {
	return newRedis(client, prefix, normalize(cfg), defaultCacheEntries)
}

func newRedis(client redis.UniversalClient, prefix string, cfg Config, cacheEntries int) *Redis {
	r := &Redis{
		client: client,
		prefix: prefix,
		cfg:    cfg,
		apply:  redis.NewScript(applyScript),
		now:    time.Now,
	}
	if cfg.CacheTTL > 0 {
		r.cache = newStatsCache(cfg.CacheTTL, cacheEntries)
	}
	return r
}

func (r *Redis) countersKey(videoID string) string {
	return r.prefix + "f:{" + videoID + "}"
}

func (r *Redis) dedupeKey(videoID string) string {
	return r.prefix + "fd:{" + videoID + "}"
}

// scriptCall is one script invocation: some videos' events of the batch.
type scriptCall struct {
	keys []string
	args []any
}

// maxEventsPerCall bounds one script invocation, so a batch never blocks
// Redis for long at once (a script runs alone); on one node it amortises the
// per-call cost over several videos.
const maxEventsPerCall = 32

// Apply counts each event not applied before. An invalid event (no id, no
// video, unknown type) fails the whole batch before anything is applied. On
// an error some videos' events may be applied; applying the batch again
// applies the rest exactly once.
func (r *Redis) Apply(ctx context.Context, events []event.Event) (int, error) {
	if err := validate(events); err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, ctx.Err()
	}
	now := r.now().UnixMilli()
	ttl := r.cfg.DedupeTTL.Milliseconds()
	every := max(r.cfg.DedupeTTL/dedupeGenerations, minDedupeSpan).Milliseconds()
	header := [...]any{now, now - ttl, ttl + every, now + every, minuteRing, hourRing, int(event.NumTypes)}

	// Group by video, in first-seen order.
	byVideo := make(map[string][]int32, len(events))
	videos := make([]string, 0, len(events))
	for i := range events {
		v := events[i].VideoID
		if _, ok := byVideo[v]; !ok {
			videos = append(videos, v)
		}
		byVideo[v] = append(byVideo[v], int32(i))
	}

	// A script may only touch one Redis Cluster slot, and a Ring shard by
	// key: there, one video per call. A single server takes several.
	_, oneNode := r.client.(*redis.Client)
	var calls []scriptCall
	var cur *scriptCall
	inCur := 0
	for _, v := range videos {
		idx := byVideo[v]
		if cur == nil || !oneNode || inCur+len(idx) > maxEventsPerCall {
			calls = append(calls, scriptCall{args: append(make([]any, 0, len(header)+1+5*len(idx)), header[:]...)})
			cur, inCur = &calls[len(calls)-1], 0
		}
		cur.keys = append(cur.keys, r.countersKey(v), r.dedupeKey(v))
		cur.args = append(cur.args, len(idx))
		for _, i := range idx {
			e := &events[i]
			var member [8]byte
			binary.BigEndian.PutUint64(member[:], dedupeKey(e.VideoID, e.ID))
			minute := minuteOf(e.TS)
			cur.args = append(cur.args, string(member[:]), int(e.Type), minute,
				"m"+strconv.FormatInt(minute, 10), "h"+strconv.FormatInt(hourOfMinute(minute), 10))
		}
		inCur += len(idx)
	}
	return r.runApply(ctx, calls)
}

// runApply runs the calls in one pipeline of EVALSHA. A server that lost
// its script cache (restart, failover, SCRIPT FLUSH) answers NOSCRIPT
// without running anything; those calls go again as EVAL, which also
// caches the script on whichever node ran them.
func (r *Redis) runApply(ctx context.Context, calls []scriptCall) (int, error) {
	applied := 0
	missing, err := r.runScripts(ctx, calls, r.apply.EvalSha, &applied)
	if err == nil && len(missing) > 0 {
		missing, err = r.runScripts(ctx, missing, r.apply.Eval, &applied)
		if err == nil && len(missing) > 0 {
			err = errors.New("NOSCRIPT answered to EVAL")
		}
	}
	if err != nil {
		return applied, fmt.Errorf("feature: redis apply: %w", err)
	}
	return applied, nil
}

type scriptRunner func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd

// runScripts runs calls in one pipeline, adds what they applied to
// applied, and returns the calls the server had no script for.
func (r *Redis) runScripts(ctx context.Context, calls []scriptCall, run scriptRunner, applied *int) ([]scriptCall, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i := range calls {
		cmds[i] = run(ctx, pipe, calls[i].keys, calls[i].args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	var missing []scriptCall
	var firstErr error
	for i, cmd := range cmds {
		n, err := cmd.Int()
		switch {
		case err == nil:
			*applied += n
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			missing = append(missing, calls[i])
		case firstErr == nil:
			firstErr = err
		}
	}
	return missing, firstErr
}

// Get appends stats for each id in order; unknown videos get zero counters.
func (r *Redis) Get(ctx context.Context, dst []Stats, videoIDs []string, now time.Time) ([]Stats, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	nowMinute := minuteOf(now)
	all := slices.Grow(dst, len(videoIDs))[:len(dst)+len(videoIDs)]
	out := all[len(dst):]
	clear(out)
	var misses []int
	wall := r.now()
	for i, id := range videoIDs {
		out[i].VideoID = id
		if r.cache != nil && r.cache.get(id, wall, nowMinute, &out[i]) {
			continue
		}
		misses = append(misses, i)
	}
	if len(misses) == 0 {
		return all, nil
	}

	// Taken before the round trip, so an entry's age never understates how
	// old its data is.
	fetched := r.now()
	pipe := r.client.Pipeline()
	cmdOf := make(map[string]*redis.MapStringStringCmd, len(misses))
	for _, i := range misses {
		id := videoIDs[i]
		if _, ok := cmdOf[id]; !ok {
			cmdOf[id] = pipe.HGetAll(ctx, r.countersKey(id))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return dst, fmt.Errorf("feature: redis get: %w", err)
	}

	parsed := make(map[string]*cacheEntry, len(cmdOf))
	for _, i := range misses {
		id := videoIDs[i]
		e, ok := parsed[id]
		if !ok {
			s, err := parseSeries(cmdOf[id].Val())
			if err != nil {
				return dst, fmt.Errorf("feature: redis get %q: %w", id, err)
			}
			e = &cacheEntry{fetched: fetched, series: s, minute: nowMinute}
			e.hour, e.day = s.windows(nowMinute)
			parsed[id] = e
			if r.cache != nil {
				r.cache.put(id, e)
			}
		}
		out[i].Hour, out[i].Day, out[i].Lifetime = e.hour, e.day, e.series.life
	}
	return all, nil
}

// parseSeries rebuilds a video's series from its hash. Fields it does not
// know are ignored, and buckets outside the rings are dropped, so a layout
// written by a newer version still reads.
func parseSeries(fields map[string]string) (*series, error) {
	s := &series{}
	for f, v := range fields {
		if f == "" {
			continue
		}
		switch f[0] {
		case 'n':
			if f != "n" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("field n: %w", err)
			}
			s.seen, s.newest = true, n
		case 'l':
			if f != "l" {
				continue
			}
			counts, err := parsePacked(v)
			if err != nil {
				return nil, fmt.Errorf("field l: %w", err)
			}
			for t, n := range counts {
				s.life[t] = int64(n)
			}
		case 'm', 'h':
			idx, err := strconv.ParseInt(f[1:], 10, 64)
			if err != nil {
				continue
			}
			counts, err := parsePacked(v)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f, err)
			}
			b := bucket{idx: idx}
			for t, n := range counts {
				b.n[t] = uint32(min(n, math.MaxUint32))
			}
			if f[0] == 'm' {
				s.minutes = append(s.minutes, b)
			} else {
				s.hours = append(s.hours, b)
			}
		}
	}
	if !s.seen {
		return &series{}, nil
	}
	byIdx := func(a, b bucket) int { return cmp.Compare(a.idx, b.idx) }
	slices.SortFunc(s.minutes, byIdx)
	slices.SortFunc(s.hours, byIdx)
	s.minutes = dropThrough(s.minutes, s.newest-minuteRing)
	s.hours = dropThrough(s.hours, hourOfMinute(s.newest)-hourRing)
	return s, nil
}

// parsePacked decodes packed counts in event type order, ignoring types
// this version does not know; missing trailing types are zero.
func parsePacked(s string) ([event.NumTypes]uint64, error) {
	var counts [event.NumTypes]uint64
	if len(s)%countBytes != 0 {
		return counts, fmt.Errorf("packed counts of %d bytes", len(s))
	}
	for t := 0; t < len(counts) && (t+1)*countBytes <= len(s); t++ {
		var n uint64
		for k := countBytes - 1; k >= 0; k-- {
			n = n<<8 | uint64(s[t*countBytes+k])
		}
		counts[t] = n
	}
	return counts, nil
}

// Ping checks Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("feature: redis ping: %w", err)
	}
	return nil
}

// Close drops the cache. The client is the caller's to close.
func (r *Redis) Close() error {
	if r.cache != nil {
		r.cache.clear()
	}
	return nil
}

package profile

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/event"
)

// Per-user keys, <prefix>u:{<user id>}:<suffix>. The braces are a Redis
// Cluster hash tag: one user's keys share a slot, so a script may touch them
// all. Both keys expire between 7/8 of the retention and the retention
// after the user's last write (see applyScript).
//
//	p  hash  the profile, read whole by Get:
//	         last           latest event time, unix ms
//	         x              wall-clock ms the keys' expiry was last set
//	         c<type>        applied events of that type (event.Type number)
//	         n<kind>        entries stored per kind below, and nd for the
//	                        dedupe hash, so caps are checked without a scan
//	         t:|c:|u:<key>  tag|category|uploader interest: three
//	                        little-endian float64s: short, long, event ms
//	         p:|o:|s:<video> played|positive|shown video: event ms
//	d  hash  applied event id hashes (hex FNV-1a 64) -> the user's event
//	         clock when applied
const (
	keyProfile = iota
	keyDedupe
	numKeys
)

var keySuffixes = [numKeys]string{"p", "d"}

// Field prefixes of the set kinds in the profile hash, beside kindPrefix.
const (
	playedPrefix   = 'p'
	positivePrefix = 'o'
	shownPrefix    = 's'
)

// maxEventsPerCall bounds one script call's arguments (Lua's unpack has a
// stack limit); a bigger group for one user runs as several calls.
const maxEventsPerCall = 200

// pruneScanCount is the SCAN page size Prune asks for.
const pruneScanCount = 500

// scriptLib is shared by both scripts: capped-collection eviction over the
// profile or dedupe hash, with the same order as Memory (weakest interest
// by rank, oldest entry by time; ties by field name) and the same slack.
const scriptLib = `
local function slack(cap) return math.floor(cap / 4) end
local LN2 = math.log(2)
local function rank(l, at, hl)
  if l == 0 then return -math.huge end
  return math.log(math.abs(l)) / LN2 + at / hl
end
-- evict trims each over-cap kind of hash key to its cap; all is the hash's
-- HGETALL, order(field, value) the sort key. Returns the new counts.
local function evict(key, all, over, caps, order)
  local cand = {}
  for k in pairs(over) do cand[k] = {} end
  for i = 1, #all, 2 do
    local f = all[i]
    local k = (string.sub(f, 2, 2) == ':') and string.sub(f, 1, 1) or ''
    if cand[k] then
      local list = cand[k]
      list[#list + 1] = {f, order(k, all[i + 1])}
    end
  end
  local kept = {}
  for k, list in pairs(cand) do
    table.sort(list, function(a, b)
      if a[2] ~= b[2] then return a[2] < b[2] end
      return a[1] < b[1]
    end)
    local del = {}
    for i = 1, #list - caps[k] do
      del[#del + 1] = list[i][1]
      if #del == 1000 then
        redis.call('HDEL', key, unpack(del))
        del = {}
      end
    end
    if #del > 0 then redis.call('HDEL', key, unpack(del)) end
    kept[k] = math.min(#list, caps[k])
  end
  return kept
end
`

// applyScript applies one user's events: it reads every profile field they
// touch, then walks them in order, marking each id with HSETNX (which also
// answers whether it was new, so repeats within the call are caught too) and
// merging interests, counts and sets of the new ones exactly as Memory
// does; one HSET writes the result. Three commands in the common case; the
// whole call is atomic. It returns how many events were new.
//
// Key expiry is refreshed only when the wall-clock stamp x in the profile is
// older than an eighth of the retention (or a key is new), so a user's keys
// expire between 7/8 of the retention and the full retention after their
// last write.
//
// ARGV: short half-life ms, long half-life ms, max interests, max played,
// max shown, max dedupe marks, key ttl ms, wall-clock now ms, event count,
// then per event: id hash, count field, ts ms, weight, n, n interest
// fields, m, m set fields — field names ready-made by Go, so the script
// builds no strings.
var applyScript = redis.NewScript(scriptLib + applySource)

const applySource = `
local P, D = KEYS[1], KEYS[2]
local hs, hl = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxI = tonumber(ARGV[3])
local caps = {t = maxI, c = maxI, u = maxI, p = tonumber(ARGV[4]), o = tonumber(ARGV[4]),
  s = tonumber(ARGV[5]), d = tonumber(ARGV[6])}
local ttl = tonumber(ARGV[7])
local wall = tonumber(ARGV[8])
local n = tonumber(ARGV[9])

-- Read every field any of the events touches in one HMGET.
local fields, cur = {}, {}
local function want(f)
  if cur[f] == nil then
    cur[f] = false
    fields[#fields + 1] = f
  end
end
local meta = {'last', 'x', 'nt', 'nc', 'nu', 'np', 'no', 'ns', 'nd'}
for _, f in ipairs(meta) do want(f) end
local pos = {}
local e = 10
for i = 1, n do
  pos[i] = e
  want(ARGV[e + 1])
  local sets = e + 5 + tonumber(ARGV[e + 4])
  for j = e + 5, sets - 1 do want(ARGV[j]) end
  local stop = sets + tonumber(ARGV[sets])
  for j = sets + 1, stop do want(ARGV[j]) end
  e = stop + 1
end
local vals = redis.call('HMGET', P, unpack(fields))
for i, f in ipairs(fields) do cur[f] = vals[i] end

local count = {t = tonumber(cur.nt) or 0, c = tonumber(cur.nc) or 0, u = tonumber(cur.nu) or 0,
  p = tonumber(cur.np) or 0, o = tonumber(cur.no) or 0, s = tonumber(cur.ns) or 0, d = tonumber(cur.nd) or 0}
local newDedupe = count.d == 0
local last = tonumber(cur['last'])
local out = {}      -- field -> new value
local interest = {} -- field -> {short, long, at}, decoded on first use

local function merge(f, w, ts)
  local c = interest[f]
  if not c then
    if cur[f] then
      local s, l, at = struct.unpack('<ddd', cur[f])
      c = {s, l, at}
    else
      local k = string.sub(f, 1, 1)
      count[k] = count[k] + 1
    end
  end
  if not c then
    c = {w, w, ts}
  elseif ts >= c[3] then
    local d = ts - c[3]
    c[1] = c[1] * 2 ^ (-d / hs) + w
    c[2] = c[2] * 2 ^ (-d / hl) + w
    c[3] = ts
  else
    local d = c[3] - ts
    c[1] = c[1] + w * 2 ^ (-d / hs)
    c[2] = c[2] + w * 2 ^ (-d / hl)
  end
  interest[f] = c
end
local function later(f, ts)
  local old = out[f] or tonumber(cur[f])
  if not old then
    local k = string.sub(f, 1, 1)
    count[k] = count[k] + 1
  end
  if not old or ts > old then out[f] = ts end
end

local applied = 0
for i = 1, n do
  local e = pos[i]
  local ts, w = tonumber(ARGV[e + 2]), tonumber(ARGV[e + 3])
  local clock = ts
  if last ~= nil and last > ts then clock = last end
  if redis.call('HSETNX', D, ARGV[e], clock) == 1 then
    applied = applied + 1
    last = clock
    local cf = ARGV[e + 1]
    out[cf] = (out[cf] or tonumber(cur[cf]) or 0) + 1
    local sets = e + 5 + tonumber(ARGV[e + 4])
    for j = e + 5, sets - 1 do merge(ARGV[j], w, ts) end
    for j = sets + 1, sets + tonumber(ARGV[sets]) do later(ARGV[j], ts) end
  end
end
if applied == 0 then return 0 end

count.d = count.d + applied
if count.d > caps.d + slack(caps.d) then
  local kept = evict(D, redis.call('HGETALL', D), {[''] = true}, {[''] = caps.d},
    function(_, v) return tonumber(v) end)
  count.d = kept['']
end

local args = {}
for f, v in pairs(out) do
  args[#args + 1] = f
  args[#args + 1] = v
end
for f, c in pairs(interest) do
  args[#args + 1] = f
  args[#args + 1] = struct.pack('<ddd', c[1], c[2], c[3])
end
args[#args + 1] = 'last'
args[#args + 1] = last
local stamp = tonumber(cur['x'])
local refresh = stamp == nil or wall - stamp >= ttl / 8 or wall < stamp
if refresh then
  args[#args + 1] = 'x'
  args[#args + 1] = wall
end
local over = nil
for _, k in ipairs({'t', 'c', 'u', 'p', 'o', 's', 'd'}) do
  args[#args + 1] = 'n' .. k
  args[#args + 1] = count[k]
  if k ~= 'd' and count[k] > caps[k] + slack(caps[k]) then
    over = over or {}
    over[k] = true
  end
end
redis.call('HSET', P, unpack(args))
if over then
  local kept = evict(P, redis.call('HGETALL', P), over, caps, function(k, v)
    if k == 't' or k == 'c' or k == 'u' then
      local _, l, at = struct.unpack('<ddd', v)
      return rank(l, at, hl)
    end
    return tonumber(v)
  end)
  local fix = {}
  for k, c in pairs(kept) do
    fix[#fix + 1] = 'n' .. k
    fix[#fix + 1] = c
  end
  redis.call('HSET', P, unpack(fix))
end
if refresh then
  redis.call('PEXPIRE', P, ttl)
  redis.call('PEXPIRE', D, ttl)
elseif newDedupe then
  redis.call('PEXPIRE', D, ttl)
end
return applied
`

// pruneScript prunes one user like Memory.pruneUser. It returns 1, or 0
// when the user's keys are already gone.
//
// ARGV: now ms, retention cutoff ms, floor, short half-life ms, long
// half-life ms, short window ms, long window ms, then the oldest times kept
// for played/positive, shown, and dedupe marks.
var pruneScript = redis.NewScript(`
local P, D = KEYS[1], KEYS[2]
local now, expired, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hs, hl, sw, lw = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local since = {p = tonumber(ARGV[8]), o = tonumber(ARGV[8]), s = tonumber(ARGV[9])}
local dedupeSince = tonumber(ARGV[10])
local last = tonumber(redis.call('HGET', P, 'last'))
if not last then return 0 end
if last < expired then
  redis.call('DEL', P, D)
  return 1
end

local function prune(key, all, keep)
  local del, kept = {}, {}
  for i = 1, #all, 2 do
    local f = all[i]
    local k = (string.sub(f, 2, 2) == ':') and string.sub(f, 1, 1) or nil
    if key == D then k = '' end
    if k then
      if keep(k, all[i + 1]) then
        kept[k] = (kept[k] or 0) + 1
      else
        del[#del + 1] = f
        if #del == 1000 then
          redis.call('HDEL', key, unpack(del))
          del = {}
        end
      end
    end
  end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
  return kept
end

local kept = prune(P, redis.call('HGETALL', P), function(k, v)
  if k == 't' or k == 'c' or k == 'u' then
    local s, l, at = struct.unpack('<ddd', v)
    local age = math.max(now - at, 0)
    return (age <= lw and math.abs(l * 2 ^ (-age / hl)) >= floor) or
      (age <= sw and math.abs(s * 2 ^ (-age / hs)) >= floor)
  end
  if since[k] then return tonumber(v) >= since[k] end
  return true
end)
local marks = prune(D, redis.call('HGETALL', D), function(_, v) return tonumber(v) >= dedupeSince end)
local args = {}
for _, k in ipairs({'t', 'c', 'u', 'p', 'o', 's'}) do
  args[#args + 1] = 'n' .. k
  args[#args + 1] = kept[k] or 0
end
args[#args + 1] = 'nd'
args[#args + 1] = marks[''] or 0
redis.call('HSET', P, unpack(args))
return 1
`)

// Redis is the Store shared by every replica: one script call per user per
// Apply, pipelined in one round trip; Get is one HGETALL.
type Redis struct {
	client redis.UniversalClient
	prefix string
	cfg    Config
	decay  decay
	// applyHead is the constant head of every applyScript call's ARGV.
	applyHead   []any
	weights     [event.NumTypes]string
	countFields [event.NumTypes]string
}

// NewRedis returns a store keeping its data under prefix in client (for
// example "rf:profile:"). The caller owns client: Close does not close it.
// Unset Config fields take their DefaultConfig values.
func NewRedis(client redis.UniversalClient, prefix string, cfg Config) *Redis {
	cfg = cfg.withDefaults()
	r := &Redis{client: client, prefix: prefix, cfg: cfg, decay: newDecay(cfg)}
	r.applyHead = []any{
		cfg.ShortHalfLife.Milliseconds(), cfg.LongHalfLife.Milliseconds(),
		cfg.MaxInterests, cfg.MaxPlayed, cfg.MaxShown, maxDedupeMarks,
		cfg.retention().Milliseconds(),
	}
	for t, w := range cfg.Weights {
		r.weights[t] = strconv.FormatFloat(w, 'g', -1, 64)
		r.countFields[t] = "c" + strconv.Itoa(t)
	}
	return r
}

func (r *Redis) keys(userID string) []string {
	return keysAt(r.prefix + "u:{" + userID + "}:")
}

func keysAt(base string) []string {
	out := make([]string, numKeys)
	for i, s := range keySuffixes {
		out[i] = base + s
	}
	return out
}

// scriptCall is one script invocation, kept so it can be retried with EVAL
// when the server has not cached the script (restart, SCRIPT FLUSH, a new
// cluster node).
type scriptCall struct {
	keys []string
	args []any
}

// Apply groups events by user, in batch order, and runs applyScript once per
// group, all pipelined. On error some groups may have been applied; a retry
// of the whole batch is safe since applied ids are skipped.
func (r *Redis) Apply(ctx context.Context, events []event.Event) (int, error) {
	if err := validate(events); err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, ctx.Err()
	}
	var order []string
	groups := make(map[string][]int)
	for i := range events {
		u := events[i].UserID
		if _, ok := groups[u]; !ok {
			order = append(order, u)
		}
		groups[u] = append(groups[u], i)
	}
	calls := make([]scriptCall, 0, len(order))
	for _, u := range order {
		keys := r.keys(u)
		idx := groups[u]
		for len(idx) > 0 {
			n := min(len(idx), maxEventsPerCall)
			calls = append(calls, scriptCall{keys: keys, args: r.applyArgs(events, idx[:n])})
			idx = idx[n:]
		}
	}
	results, err := runScripts(ctx, r.client, applyScript, calls)
	applied := 0
	for _, v := range results {
		applied += int(v)
	}
	if err != nil {
		return applied, fmt.Errorf("profile: redis apply: %w", err)
	}
	return applied, nil
}

func (r *Redis) applyArgs(events []event.Event, idx []int) []any {
	args := make([]any, 0, len(r.applyHead)+2+len(idx)*14)
	args = append(args, r.applyHead...)
	args = append(args, time.Now().UnixMilli(), len(idx))
	for _, i := range idx {
		e := &events[i]
		args = append(args, strconv.FormatUint(idHash(e.ID), 16), r.countFields[e.Type], e.TS.UnixMilli(), r.weights[e.Type], 0)
		countAt, n := len(args)-1, 0
		if r.cfg.Weights[e.Type] != 0 {
			eachInterestKey(e, func(kind int, key string) {
				args = append(args, string(kindPrefix[kind])+":"+key)
				n++
			})
		}
		args[countAt] = n
		args = append(args, 0)
		countAt, n = len(args)-1, 0
		if sets := setsOf(e.Type); e.VideoID != "" {
			for _, set := range [...]struct {
				bit    int
				prefix byte
			}{{setPlayed, playedPrefix}, {setPositive, positivePrefix}, {setShown, shownPrefix}} {
				if sets&set.bit != 0 {
					args = append(args, string(set.prefix)+":"+e.VideoID)
					n++
				}
			}
		}
		args[countAt] = n
	}
	return args
}

// runScripts pipelines one EVALSHA per call and re-sends with EVAL the calls
// the server answered NOSCRIPT (nothing of those ran). results[i] is call
// i's integer reply, or 0 if it failed; err is the first failure.
func runScripts(ctx context.Context, c redis.UniversalClient, script *redis.Script, calls []scriptCall) ([]int64, error) {
	results := make([]int64, len(calls))
	pending := make([]int, len(calls))
	for i := range pending {
		pending[i] = i
	}
	var firstErr error
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		pipe := c.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for j, i := range pending {
			if attempt == 0 {
				cmds[j] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
			} else {
				cmds[j] = script.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
			}
		}
		_, _ = pipe.Exec(ctx) // errors are read per command below
		var retry []int
		for j, i := range pending {
			v, err := cmds[j].Int64()
			switch {
			case err == nil:
				results[i] = v
			case attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				retry = append(retry, i)
			case firstErr == nil:
				firstErr = err
			}
		}
		pending = retry
	}
	return results, firstErr
}

// Get reads the user's profile hash in one round trip and decays the
// interests to now.
func (r *Redis) Get(ctx context.Context, userID string, now time.Time) (*Profile, error) {
	h, err := r.client.HGetAll(ctx, r.keys(userID)[keyProfile]).Result()
	if err != nil {
		return nil, fmt.Errorf("profile: redis get %q: %w", userID, err)
	}
	p, err := r.decode(userID, h, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("profile: redis get %q: %w", userID, err)
	}
	return p, nil
}

// decode builds the profile from the hash layout documented above.
func (r *Redis) decode(userID string, h map[string]string, now int64) (*Profile, error) {
	var interests storedInterests
	sets := map[byte]map[string]int64{playedPrefix: {}, positivePrefix: {}, shownPrefix: {}}
	var counts event.Counts
	var last int64
	for f, v := range h {
		if len(f) >= 2 && f[1] == ':' {
			key := f[2:]
			if kind := strings.IndexByte(string(kindPrefix[:]), f[0]); kind >= 0 {
				c, err := decodeInterest(v)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", f, err)
				}
				interests = append(interests, storedInterest{kind: kind, key: key, v: c})
			} else if set, ok := sets[f[0]]; ok {
				ms, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", f, err)
				}
				set[key] = int64(ms)
			}
			continue
		}
		switch {
		case f == "last":
			ms, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("field last: %w", err)
			}
			last = int64(ms)
		case len(f) > 1 && f[0] == 'c':
			t, err := strconv.Atoi(f[1:])
			if err != nil || t < 0 || t >= int(event.NumTypes) {
				continue // a type this build does not know: written by a newer one
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f, err)
			}
			counts[t] = n
		}
	}

	var sizes [numKinds]int
	for _, e := range interests {
		sizes[e.kind]++
	}
	p := sizedProfile(userID, sizes, len(sets[playedPrefix]), len(sets[positivePrefix]), len(sets[shownPrefix]))
	p.Counts = counts
	if counts.Total() > 0 {
		p.LastEvent = fromMillis(last)
	}
	short, long := p.ShortTerm.kindMaps(), p.LongTerm.kindMaps()
	for kind := range numKinds {
		r.decay.read(interests.of(kind), now, r.cfg.MaxInterests, short[kind], long[kind])
	}
	readNamedTimed(p.Played, sets[playedPrefix], now-r.cfg.PlayedTTL.Milliseconds(), r.cfg.MaxPlayed)
	readNamedTimed(p.Positive, sets[positivePrefix], now-r.cfg.PlayedTTL.Milliseconds(), r.cfg.MaxPlayed)
	readNamedTimed(p.Shown, sets[shownPrefix], now-r.cfg.ShownTTL.Milliseconds(), r.cfg.MaxShown)
	return p, nil
}

// readNamedTimed is readTimed for a set keyed by the names themselves.
func readNamedTimed(dst map[string]time.Time, set map[string]int64, since int64, limit int) {
	for k, at := range set {
		if at >= since {
			dst[k] = fromMillis(at)
		}
	}
	if len(set) > limit {
		for _, k := range oldest(set, limit, func(s string) string { return s }) {
			delete(dst, k)
		}
	}
}

// decodeInterest reads struct.pack('<ddd', short, long, at).
func decodeInterest(v string) (interest, error) {
	if len(v) != 24 {
		return interest{}, fmt.Errorf("interest is %d bytes, want 24", len(v))
	}
	f := func(i int) float64 {
		return math.Float64frombits(binary.LittleEndian.Uint64([]byte(v[8*i : 8*i+8])))
	}
	return interest{short: f(0), long: f(1), at: int64(f(2))}, nil
}

type storedInterest struct {
	kind int
	key  string
	v    interest
}

type storedInterests []storedInterest

func (s storedInterests) of(kind int) func(yield func(string, interest) bool) {
	return func(yield func(string, interest) bool) {
		for _, e := range s {
			if e.kind == kind && !yield(e.key, e.v) {
				return
			}
		}
	}
}

// Prune SCANs every user (each master of a cluster) and prunes each page of
// users with one pipelined script call per user. It returns users visited.
func (r *Redis) Prune(ctx context.Context, now time.Time) (int, error) {
	nowMs := now.UnixMilli()
	args := []any{
		nowMs, nowMs - r.cfg.retention().Milliseconds(), pruneFloor,
		r.cfg.ShortHalfLife.Milliseconds(), r.cfg.LongHalfLife.Milliseconds(),
		r.cfg.ShortWindow.Milliseconds(), r.cfg.LongWindow.Milliseconds(),
		nowMs - r.cfg.PlayedTTL.Milliseconds(), nowMs - r.cfg.ShownTTL.Milliseconds(),
		nowMs - r.cfg.DedupeTTL.Milliseconds(),
	}
	suffix := keySuffixes[keyProfile]
	match := globEscape(r.prefix) + "u:{*}:" + suffix
	var visited atomic.Int64 // cluster masters are scanned concurrently
	pruneNode := func(ctx context.Context, node redis.UniversalClient) error {
		var cursor uint64
		for {
			page, next, err := node.Scan(ctx, cursor, match, pruneScanCount).Result()
			if err != nil {
				return fmt.Errorf("profile: redis prune scan: %w", err)
			}
			calls := make([]scriptCall, 0, len(page))
			for _, key := range page {
				calls = append(calls, scriptCall{keys: keysAt(strings.TrimSuffix(key, suffix)), args: args})
			}
			results, err := runScripts(ctx, r.client, pruneScript, calls)
			for _, v := range results {
				visited.Add(v)
			}
			if err != nil {
				return fmt.Errorf("profile: redis prune: %w", err)
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cluster, ok := r.client.(*redis.ClusterClient); ok {
		err := cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return pruneNode(ctx, node)
		})
		return int(visited.Load()), err
	}
	err := pruneNode(ctx, r.client)
	return int(visited.Load()), err
}

// globEscape quotes the characters SCAN MATCH treats as patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Ping checks Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("profile: redis ping: %w", err)
	}
	return nil
}

// Close does nothing: the client belongs to the caller, who may share it.
func (r *Redis) Close() error { return nil }

var _ Store = (*Redis)(nil)

"""The Lua scripts of the task indexes' layout: its upgrade, and the pages of lists that read several indexes
(wsexec.store.scripts' docstring says how KEYS, ARGV and the shebang flags are used)."""

from __future__ import annotations

from wsexec.store.scripts import _INDEX_VALUE, READS, WRITES

BACKFILL_INDEXES = WRITES + """
-- Add a batch of records to some of their indexes (a layout upgrade: records.TASK_COMPOSITES), in id order from a
-- cursor; idempotent, and atomic per batch, so a record changed meanwhile is indexed by its values of the moment.
-- KEYS[1] the kind's 'all' index
-- ARGV[1] record key prefix, ARGV[2] index prefix, ARGV[3] JSON list of the indexes to fill, ARGV[4] the last id done
-- (0 at first), ARGV[5] batch size
-- returns {how many it looked at, the last id it did}
local record_prefix, index_prefix, fields = ARGV[1], ARGV[2], cjson.decode(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[4], '+inf', 'LIMIT', 0, tonumber(ARGV[5]))
""" + _INDEX_VALUE + """
for _, id in ipairs(ids) do
  local hash = record_prefix .. id
  local function get(f) return redis.call('HGET', hash, f) end
  for _, f in ipairs(fields) do
    local v = index_value(f, get)
    if v then redis.call('ZADD', index_prefix .. f .. ':' .. v, id, id) end
  end
end
return {#ids, ids[#ids] or ARGV[4]}
"""

UNION_PAGE = READS + """
-- One page, highest ids first, of the union of disjoint sorted sets scored by id (a task is in one state only: the
-- tasks with a tag are those of 'state+tag' in each state), in O(log N) whatever the page: the id at the page's first
-- rank is found by a binary search of the scores, counting with ZCOUNT, then each set gives its next ids from there.
-- KEYS the sets
-- ARGV[1] the page's first rank (0: the highest id), ARGV[2] the page size
-- returns {the union's size, the page's ids}
local start, size = tonumber(ARGV[1]), tonumber(ARGV[2])
local total, highest = 0, 0
for _, k in ipairs(KEYS) do
  total = total + redis.call('ZCARD', k)
  local top = redis.call('ZREVRANGE', k, 0, 0, 'WITHSCORES')
  if top[2] then highest = math.max(highest, tonumber(top[2])) end
end
if start >= total then return {total, {}} end
local function above(t)  -- how many ids are >= t
  local n = 0
  for _, k in ipairs(KEYS) do n = n + redis.call('ZCOUNT', k, t, '+inf') end
  return n
end
local first = highest  -- the largest t with at least start + 1 ids >= t: the id at rank start
if start > 0 then
  local low, high = 0, highest
  while low < high do
    local middle = math.floor((low + high + 1) / 2)
    if above(middle) >= start + 1 then low = middle else high = middle - 1 end
  end
  first = low
end
local found = {}
for _, k in ipairs(KEYS) do
  for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', k, first, '-inf', 'LIMIT', 0, size)) do
    table.insert(found, tonumber(id))
  end
end
table.sort(found, function(a, b) return a > b end)
local page = {}
for i = 1, math.min(size, #found) do page[i] = found[i] end
return {total, page}
"""

WALK_PAGE = READS + """
-- One page, highest ids first, of the union of disjoint parts, each the intersection of its sorted sets (scored by
-- id), without storing any intersection: each part walks its smallest set from its highest id, keeping the ids the
-- others have too, until it has the page's last rank, so a first page costs the page over how selective the other
-- filters are, not the sets' size; the count is ZINTERCARD's (Redis's own walk of the smallest set, in C).
-- KEYS the sets, part after part
-- ARGV[1] the page's first rank (0: the highest id), ARGV[2] the page size, ARGV[3..] each part's number of sets
-- returns {the union's size, the page's ids}
local start, size = tonumber(ARGV[1]), tonumber(ARGV[2])
local want, total, found, at = start + size, 0, {}, 1
for i = 3, #ARGV do
  local part = {}
  for j = at, at + tonumber(ARGV[i]) - 1 do table.insert(part, {KEYS[j], redis.call('ZCARD', KEYS[j])}) end
  at = at + #part
  table.sort(part, function(a, b) return a[2] < b[2] end)
  local names = {}
  for j, set in ipairs(part) do names[j] = set[1] end
  total = total + (#names == 1 and part[1][2] or redis.call('ZINTERCARD', #names, unpack(names)))
  local kept, offset = 0, 0
  while kept < want and offset < part[1][2] do
    for _, id in ipairs(redis.call('ZREVRANGE', names[1], offset, offset + 99)) do
      local all = true
      for j = 2, #names do
        if not redis.call('ZSCORE', names[j], id) then all = false; break end
      end
      if all and kept < want then table.insert(found, tonumber(id)); kept = kept + 1 end
    end
    offset = offset + 100
  end
end
table.sort(found, function(a, b) return a > b end)
local page = {}
for i = start + 1, math.min(want, #found) do table.insert(page, found[i]) end
return {total, page}
"""

"""The Lua scripts of the store's smaller concerns: retention, notes, idempotency, output, login limits, wait leases
and audit (wsexec.store.scripts' docstring says how KEYS, ARGV and the shebang flags are used)."""

from __future__ import annotations

from wsexec.store.scripts import _ALLOCATE_IDS, _CREATE_ARGS, _UNINDEX, _WRITE_RECORDS, ALLOW_OOM, READS, WRITES

PURGE = ALLOW_OOM + """
-- Delete finished tasks that ended before a cutoff, with their index entries and sub-keys, a batch at a time.
-- KEYS[1] the finished zset
-- ARGV[1] the cutoff (unix time), ARGV[2] batch size, ARGV[3] task key prefix, ARGV[4] index prefix,
-- ARGV[5] JSON list of indexed fields, ARGV[6] JSON list of sub-key suffixes
-- returns {how many it looked at, ids whose hash had already expired (their index values are unknown)}
local finished, cutoff, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local record_prefix, index_prefix = ARGV[3], ARGV[4]
local indexed, suffixes = cjson.decode(ARGV[5]), cjson.decode(ARGV[6])
""" + _UNINDEX + """
local ids = redis.call('ZRANGEBYSCORE', finished, '-inf', cutoff, 'LIMIT', 0, limit)
local gone = {}
for _, id in ipairs(ids) do
  local hash = record_prefix .. id
  if redis.call('EXISTS', hash) == 1 then
    unindex(hash, id, index_prefix, indexed)
  else
    table.insert(gone, id)
    redis.call('ZREM', index_prefix .. 'all', id)
  end
  redis.call('ZREM', finished, id)
  redis.call('DEL', hash)
  for _, suffix in ipairs(suffixes) do redis.call('DEL', hash .. suffix) end
end
return {#ids, gone}
"""

CREATE_NOTE = WRITES + """
-- Store a note with a new id, unless its instance is gone (deleted meanwhile: its notes went with it).
-- KEYS[1] the note id counter, KEYS[2] the instance's hash
-- ARGV[1..4] as CREATE (one record)
-- returns {'ok', ids} or {'missing'}
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
""" + _CREATE_ARGS + _ALLOCATE_IDS + _WRITE_RECORDS + """
return {'ok', ids}
"""

IDEMPOTENCY_BEGIN = WRITES + """
-- The first request with an idempotency key stores its pending record; later ones get what is stored.
-- KEYS[1] the idempotency key
-- ARGV[1] the pending record (JSON), ARGV[2] its TTL in seconds
-- returns nil for the first request, else the stored record
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

APPEND = WRITES + """
-- Append a chunk of output, never past the cap; a call retried after a lost reply must not append twice.
-- Each stored chunk also touches the task's notification stream (one entry kept), which wakes its followers.
-- KEYS[1] the output stream's key, KEYS[2] the task's notification stream
-- ARGV[1] the cap in bytes, ARGV[2] the chunk, ARGV[3] the byte offset the chunk starts at
-- returns the room that was left before the chunk (0: a repeated chunk, ignored)
local length = redis.call('STRLEN', KEYS[1])
if length > tonumber(ARGV[3]) then return 0 end
local room = tonumber(ARGV[1]) - length
if room > 0 then
  redis.call('APPEND', KEYS[1], string.sub(ARGV[2], 1, room))
  redis.call('XADD', KEYS[2], 'MAXLEN', '1', '*', 'o', '1')
end
return room
"""

LIMITS_LOCKED = READS + """
-- Is a failure counter at its limit? The user name's does not lock out an address the user logged in from before.
-- KEYS[1] the client address's counter; optionally KEYS[2] the user name's and KEYS[3] the name's known addresses
-- ARGV[1] the address limit, ARGV[2] the user limit, ARGV[3] the client's address
-- returns the milliseconds until the last of the counters at their limit expires (0: none is)
local wait = 0
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then wait = redis.call('PTTL', KEYS[1]) end
if KEYS[2] and tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then
  local now = redis.call('TIME')
  local known_until = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[3]) or '0')
  if known_until <= tonumber(now[1]) * 1000 then wait = math.max(wait, redis.call('PTTL', KEYS[2])) end
end
return wait
"""

LOGIN_KNOWN = WRITES + """
-- Remember an address a user logged in from, for a while (the per-user lock spares it), forgetting expired ones.
-- KEYS[1] the name's zset of address -> until (ms, Redis clock); ARGV[1] the address, ARGV[2] for how long in ms
-- returns nothing
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

LIMITS_FAIL = ALLOW_OOM + """
-- Count one failure on each counter; a counter's window starts with its first failure.
-- KEYS counters, ARGV[1] the window in milliseconds
-- returns nothing
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[1]) end
end
"""

LEASE_ACQUIRE = ALLOW_OOM + """
-- Take one of a user's limited leases (concurrent waits), dropping those whose time is up (a crashed process's).
-- KEYS[1] the user's zset of lease id -> expiry (ms, Redis clock)
-- ARGV[1] the new lease's id, ARGV[2] its duration in ms, ARGV[3] how many the user may hold
-- returns 0 if taken, else the milliseconds until the soonest held lease expires
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end  -- run again (a retry): it has it
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(soonest[2]) - now_ms)
end
local expiry = now_ms + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

IDEMPOTENCY_SAVE = ALLOW_OOM + """
-- Keep a request's answer for its retries: the change it reports has happened, even if Redis is now full.
-- KEYS[1] the idempotency key
-- ARGV[1] the record (JSON), ARGV[2] its TTL in seconds
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
"""

# A fragment: audit_push(list, bytes, entry, keep, max_bytes) prepends an audit entry and drops the oldest beyond
# `keep` entries or `max_bytes` bytes of entries (the newest always stays); the string `bytes` holds the entries'
# total, kept here (a list written before it existed is counted once, the first time).
AUDIT_PUSH = """
local function audit_push(list, bytes, entry, keep, max_bytes)
  local total = tonumber(redis.call('GET', bytes) or '')
  if not total then
    total = 0
    for start = 0, redis.call('LLEN', list) - 1, 1000 do
      for _, old in ipairs(redis.call('LRANGE', list, start, start + 999)) do total = total + #old end
    end
  end
  redis.call('LPUSH', list, entry)
  total = total + #entry
  local n = redis.call('LLEN', list)
  while n > 1 and (n > keep or total > max_bytes) do
    total = total - #redis.call('RPOP', list)
    n = n - 1
  end
  redis.call('SET', bytes, total)
end
"""

AUDIT_ADD = ALLOW_OOM + """
-- Log a change that has happened (even if Redis is now full), keeping only the newest entries.
-- KEYS[1] the audit list, KEYS[2] its size in bytes
-- ARGV[1] the entry (JSON), ARGV[2] how many entries to keep, ARGV[3] how many bytes of entries
""" + AUDIT_PUSH + """
audit_push(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
"""

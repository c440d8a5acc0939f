"""The Lua scripts of webhook deliveries (wsexec.store.scripts' docstring says how KEYS, ARGV, flags are used)."""

from __future__ import annotations

from wsexec.store.scripts import ALLOW_OOM, WRITES

DELIVERY_ADD = ALLOW_OOM + """
-- Store a delivery once (its id is made from what it reports, so seeing the same end twice adds nothing), due now,
-- and drop the oldest records beyond the cap (pending or not).
-- KEYS[1] its hash, KEYS[2] the deliveries zset (id -> created ms), KEYS[3] the due zset (id -> next try ms)
-- ARGV[1] its id, ARGV[2] now in ms, ARGV[3] JSON object of its fields, ARGV[4] records kept, ARGV[5] hash prefix
-- returns 1 if added, 0 if it existed
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for name, value in pairs(cjson.decode(ARGV[3])) do table.insert(fields, name); table.insert(fields, value) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('DEL', ARGV[5] .. old)
    redis.call('ZREM', KEYS[3], old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
return 1
"""

DELIVERY_CLAIM = WRITES + """
-- Take the deliveries due by now: each stays in the due zset, moved a lease ahead, so a sender that dies holding one
-- leaves it to be tried again once the lease is over (by any worker), and no other sender takes it meanwhile.
-- KEYS[1] the due zset
-- ARGV[1] now in ms, ARGV[2] the lease in ms, ARGV[3] how many at most
-- returns their ids
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return ids
"""

DELIVERY_RECORD = ALLOW_OOM + """
-- One attempt's outcome: its fields written, then due again at ARGV[2] (ms) or, with ARGV[2] empty, off the due zset
-- (delivered or given up). A record dropped meanwhile (retention) is not brought back.
-- KEYS[1] its hash, KEYS[2] the due zset
-- ARGV[1] JSON object of the fields, ARGV[2] the next try in ms or '', ARGV[3] its id
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return 0
end
local fields = {}
for name, value in pairs(cjson.decode(ARGV[1])) do table.insert(fields, name); table.insert(fields, value) end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[2] == '' then redis.call('ZREM', KEYS[2], ARGV[3]) else redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end
return 1
"""

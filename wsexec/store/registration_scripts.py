"""The Lua script of self-registration, built on the record fragments of wsexec.store.scripts (whose module docstring
says how KEYS, ARGV and the shebang flags are used)."""

from __future__ import annotations

from wsexec.store.scripts import _ALLOCATE_IDS, _WRITE_RECORDS, WRITES

REGISTER = WRITES + """
-- A host registers with a token: if the token still names the registration, which has neither expired nor been used
-- up, and no instance holds the address, one of its uses is taken and the instance stored, all in one step (of
-- concurrent registrations for the last use exactly one gets it).
-- KEYS[1] the token's key (its digest -> the registration's id), KEYS[2] the registration's hash,
-- KEYS[3] the instance id counter
-- ARGV[1..4] as CREATE for the instance (one record), ARGV[5] the registration's id, ARGV[6] the address (lower case),
-- ARGV[7] the port
-- returns {'ok', ids}, {'unknown'} (revoked meanwhile), {'expired'}, {'used'},
-- or {'conflict', id of the instance that holds the address and port}
local registration = KEYS[2]
if redis.call('GET', KEYS[1]) ~= ARGV[5] or redis.call('EXISTS', registration) == 0 then return {'unknown'} end
local found = redis.call('HMGET', registration, 'expires_at', 'uses_left', 'instances')
local now = redis.call('TIME')
if tonumber(found[1]) <= tonumber(now[1]) + tonumber(now[2]) / 1000000 then return {'expired'} end
if tonumber(found[2]) <= 0 then return {'used'} end
local counter, record_prefix, index_prefix = KEYS[3], ARGV[1], ARGV[2]
local indexed, records = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
for _, id in ipairs(redis.call('ZRANGE', index_prefix .. 'all', 0, -1)) do
  local held = redis.call('HMGET', record_prefix .. id, 'ip', 'port')
  if held[1] and string.lower(held[1]) == ARGV[6] and held[2] == ARGV[7] then return {'conflict', id} end
end
""" + _ALLOCATE_IDS + _WRITE_RECORDS + """
redis.call('HINCRBY', registration, 'uses_left', -1)
local made = cjson.decode(found[3] or '[]')
table.insert(made, ids[1])
redis.call('HSET', registration, 'instances', cjson.encode(made))
return {'ok', ids}
"""

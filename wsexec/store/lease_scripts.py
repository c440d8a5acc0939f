"""The Lua scripts of leases beyond a task's own transitions (scripts.TRANSITION holds, claims and reaps): renewing,
finding the leases past their deadline, reading what a claim needs (wsexec.store.scripts' docstring says how KEYS,
ARGV and flags are used).

Deadlines are Redis's clock (TIME), never a worker's: workers on machines with skewed clocks agree on them.
"""

from __future__ import annotations

from wsexec.store.scripts import ALLOW_OOM, READS

RENEW = ALLOW_OOM + """
-- Renew a holder's leases and heartbeat, moving the deadlines of those of its tasks still held (even while Redis is
-- full: a worker that cannot renew is taken for dead).
-- KEYS[1] the held zset (task -> lease deadline), KEYS[2] the holder's heartbeat, KEYS[3..] the tasks' leases
-- ARGV[1] the holder, ARGV[2] the lease in seconds, ARGV[3..] the tasks' ids (as KEYS[3..])
local now = redis.call('TIME')
local deadline = tonumber(now[1]) + tonumber(ARGV[2])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
end
redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
"""

EXPIRED = READS + """
-- The held tasks whose lease deadline has passed (by Redis's clock), oldest deadline first: what a reaper checks.
-- KEYS[1] the held zset; ARGV[1] at most this many
-- returns their ids
local now = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now[1], 'LIMIT', 0, tonumber(ARGV[1]))
"""


CLAIMED = READS + """
-- What a worker needs once it has claimed a task: the task and its instance, read together (one round trip).
-- KEYS[1] the task's hash; ARGV[1] the instance key prefix
-- returns {the task's fields and values, the instance's (empty if it is gone)}
local task = redis.call('HGETALL', KEYS[1])
local instance = redis.call('HGET', KEYS[1], 'instance')
return {task, instance and redis.call('HGETALL', ARGV[1] .. instance) or {}}
"""

"""The Lua scripts of terminal sessions (wsexec.store.websh): create with its ticket, admit once, record, finish
(wsexec.store.scripts' docstring says how KEYS, ARGV and the shebang flags are used)."""

from __future__ import annotations

from wsexec.store.scripts import ALLOW_OOM, WRITES

CREATE_SESSION = WRITES + """
-- A new session record, indexed, with its one-time ticket; the instance must exist.
-- KEYS[1] the session counter, KEYS[2] the zset of all sessions, KEYS[3] the instance, KEYS[4] the ticket key
-- ARGV[1] the session key prefix, ARGV[2] the ticket's TTL in ms, ARGV[3] the record's TTL in s,
-- ARGV[4..] field, value pairs
-- returns the new id, or 'missing' (no such instance)
if redis.call('EXISTS', KEYS[3]) == 0 then return 'missing' end
local id = redis.call('INCR', KEYS[1])
local key = ARGV[1] .. id
redis.call('HSET', key, 'id', id, unpack(ARGV, 4))
redis.call('EXPIRE', key, ARGV[3])
redis.call('ZADD', KEYS[2], id, id)
redis.call('SET', KEYS[4], id, 'PX', ARGV[2])
return id
"""

ADMIT = WRITES + """
-- Take a session's ticket: any attempt uses it up (so a URL in an access log opens nothing), and it opens the
-- session only while the session waits for its websocket and the Origin was allowed (else the session ends).
-- KEYS[1] the ticket key, KEYS[2] the session, KEYS[3] its alive key
-- ARGV[1] the session id, ARGV[2] now (unix time), ARGV[3] '1' if the Origin is allowed, ARGV[4] why it is not,
-- ARGV[5] the alive key's TTL in s
-- returns 'ok', 'ticket' (unknown, used, expired or another session's), 'origin', or the state the session is in
local owner = redis.call('GET', KEYS[1])
if owner ~= ARGV[1] then return 'ticket' end
redis.call('DEL', KEYS[1])
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'PENDING' then return state or 'gone' end
if ARGV[3] ~= '1' then
  redis.call('HSET', KEYS[2], 'state', 'ENDED', 'end', ARGV[2], 'close_code', 1008, 'close_reason', ARGV[4])
  return 'origin'
end
redis.call('HSET', KEYS[2], 'state', 'ACTIVE', 'start', ARGV[2])
redis.call('PERSIST', KEYS[2])
redis.call('SET', KEYS[3], 1, 'EX', ARGV[5])
return 'ok'
"""

RECORD = WRITES + """
-- Append one asciicast event line unless the recording would pass its cap (then it is marked truncated and
-- grows no more), and count the session's output bytes either way.
-- KEYS[1] the recording, KEYS[2] the session
-- ARGV[1] the line, ARGV[2] the cap in bytes, ARGV[3] output bytes to count
-- returns 1 if recorded, 0 if not
redis.call('HINCRBY', KEYS[2], 'bytes_out', ARGV[3])
if redis.call('HGET', KEYS[2], 'recording_truncated') == 'True' then return 0 end
local size = redis.call('STRLEN', KEYS[1])
if size + #ARGV[1] > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[2], 'recording_truncated', 'True')
  return 0
end
redis.call('HSET', KEYS[2], 'recording_bytes', redis.call('APPEND', KEYS[1], ARGV[1]))
return 1
"""

FINISH = ALLOW_OOM + """
-- End a session (also while Redis is full: it has ended): its last fields, then kept for the retention period.
-- KEYS[1] the session, KEYS[2] its recording, KEYS[3] its alive key
-- ARGV[1] the retention in s, ARGV[2] '1': only if no web process serves it any more, ARGV[3..] field, value pairs
-- returns 1, or 0 if it had already ended (or is still served)
if redis.call('HGET', KEYS[1], 'state') == 'ENDED' then return 0 end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'ENDED', unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return 1
"""

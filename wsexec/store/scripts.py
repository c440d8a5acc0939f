"""The Lua scripts that keep multi-key writes atomic; each says what its KEYS and ARGV are and what it returns.

Keys reach a script as KEYS or, where a script derives them from ids, as prefixes built from wsexec.store.keys.

Each script starts with a shebang, which makes Redis decide about memory once, before the script runs: while
Redis is at its maxmemory (noeviction) a script that writes is refused whole, so nothing is ever half-written
(a script without one would be refused only at its first write that needs memory, and run on after a write
that does not). The few flagged allow-oom run even then: they free memory, end a task, record what has already
happened, or keep the login and wait limits working; each writes a few bytes at most.
"""

from __future__ import annotations

# A finished task's notification stream (output.py) only has to wake the followers already blocked on it (a
# follower that looks after the end sees the task ended): kept this long, not with the task (4.7 KB a task).
NOTIFY_KEEP_SECONDS = 60
LAYOUT = 3  # the data's layout (wsexec.store.layout): its docstring says what each one has
WRITES = "#!lua\n"  # refused whole while Redis is full
ALLOW_OOM = "#!lua flags=allow-oom\n"  # runs while Redis is full
READS = "#!lua flags=no-writes\n"  # writes nothing (so runs while Redis is full too)

# A fragment: the record (local hash) must exist and be in one of the allowed states (local allowed; empty: any).
_STATE_CHECK = """
if redis.call('EXISTS', hash) == 0 then return {'missing', ''} end
local state = redis.call('HGET', hash, 'state') or ''
if #allowed > 0 then
  local ok = false
  for _, s in ipairs(allowed) do if s == state then ok = true end end
  if not ok then return {'state', state} end
end
"""

# A fragment: index_value(f, get) is the value a record has in the index of f, given get(field) (false when absent):
# f is a field, 'a+b', a composite index of two fields of value 'va:vb' (records.TASK_COMPOSITES), or 'running+b', b
# while the state is INIT or CURRENT (records.RUNNING_BY); part(name): the field a part of f stands for.
_INDEX_VALUE = """
local function part(name) if name == 'running' then return 'state' end return name end
local function index_value(f, get)
  local a, b = string.match(f, '^([^+]+)%+(.+)$')
  if not a then return get(f) end
  if a == 'running' then local s = get('state'); return (s == 'INIT' or s == 'CURRENT') and get(b) end
  local va, vb = get(a), get(b)
  if va and vb then return va .. ':' .. vb end
  return false
end
"""

# A fragment: write the changes (null removes a field), moving the record between the indexes of indexed fields
# (of the composite indexes too: those of which a changed field is part).
_APPLY_CHANGES = _INDEX_VALUE + """
local function hash_field(f) return redis.call('HGET', hash, f) end
local touched, before = {}, {}
for _, f in ipairs(indexed) do
  for name in string.gmatch(f, '[^+]+') do
    if changes[part(name)] ~= nil then
      table.insert(touched, f)
      table.insert(before, index_value(f, hash_field))
      break
    end
  end
end
for f, v in pairs(changes) do
  if v == cjson.null then redis.call('HDEL', hash, f) else redis.call('HSET', hash, f, v) end
end
for i, f in ipairs(touched) do
  local after = index_value(f, hash_field)
  if before[i] ~= after then
    if before[i] then redis.call('ZREM', prefix .. f .. ':' .. before[i], id) end
    if after then redis.call('ZADD', prefix .. f .. ':' .. after, id, id) end
  end
end
"""

# A fragment: emit(stream, maxlen, type, id, hash) appends one lifecycle event about the task in hash to the events
# stream, trimmed to about maxlen entries, in the same atomic step as the change it reports; returns the event's id.
_EMIT = """
local function emit(stream, maxlen, kind, id, hash)
  local names = {'batch', 'tag', 'instance', 'state', 'rc', 'error'}
  local values = redis.call('HMGET', hash, unpack(names))
  local entry = {'type', kind, 'task', tostring(id)}
  for i, name in ipairs(names) do
    if values[i] then table.insert(entry, name); table.insert(entry, values[i]) end
  end
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(entry))
end
"""

_UPDATE_ARGS = """
local hash, id, prefix = KEYS[1], ARGV[1], ARGV[2]
local indexed, allowed, changes = cjson.decode(ARGV[3]), cjson.decode(ARGV[4]), cjson.decode(ARGV[5])
"""

UPDATE = WRITES + """
-- Change one record's fields if its state allows.
-- KEYS[1] the record's hash
-- ARGV[1] its id, ARGV[2] its kind's index prefix, ARGV[3] JSON list of indexed fields,
-- ARGV[4] JSON list of allowed states (empty: any), ARGV[5] JSON object of changes (null: remove the field)
-- returns {status, state found}: status 'ok', 'missing' or 'state' (not in an allowed state)
""" + _UPDATE_ARGS + _STATE_CHECK + _APPLY_CHANGES + """
return {'ok', state}
"""

# A fragment: the instances' max_concurrent slots and the liveness of a held task, for scripts that have cfg (local),
# the key templates of keys.slot_keys(); key(name, id) fills one in.
_SLOTS = """
local function key(name, id) return (string.gsub(cfg[name], '{}', function() return tostring(id) end)) end
-- a held task's worker still has it: the task's lease lives, or the worker process that holds it (its 'holder',
-- one per process even under a reused name) still beats: a starved lease keeper is not a dead worker
local function held_alive(id)
  if redis.call('EXISTS', key('lease', id)) == 1 then return true end
  local owner = redis.call('HGET', key('task', id), 'holder')
  return owner and redis.call('EXISTS', key('alive', owner)) == 1
end
-- how many of the instance's slots are taken: those of tasks still CURRENT and held alive (the others leave)
local function slots_in_use(instance)
  local slots = key('slots', instance)
  for _, member in ipairs(redis.call('SMEMBERS', slots)) do
    if redis.call('HGET', key('task', member), 'state') ~= 'CURRENT' or not held_alive(member) then
      redis.call('SREM', slots, member)
    end
  end
  return redis.call('SCARD', slots)
end
"""

TRANSITION = ALLOW_OOM + """
-- A task's update together with its lease: 'hold:<ttl>:<owner>' (a worker has it), 'claim:<ttl>:<owner>' (as hold,
-- taking a slot if its instance has max_concurrent; when none is free the task waits in INIT instead, unchanged),
-- 'release' (it is finished), 'reap' (finished because its lease expired: refused unless the task is held, its lease
-- gone and its holder's heartbeat too).
-- KEYS[1] the task's hash, KEYS[2] its lease, KEYS[3] the held zset (by lease deadline), KEYS[4] the finished zset,
-- KEYS[5], KEYS[6] its stdout and stderr, KEYS[7] the events stream (a state change adds 'started' or 'finished'),
-- KEYS[8] its output notification stream (the end wakes whoever follows the output)
-- ARGV[1..5] as UPDATE, ARGV[6] the lease operation (or ''), ARGV[7] seconds before Redis expires a finished task,
-- ARGV[8] the events stream's length (about), ARGV[9] the key prefix of uploads' content (the last of an upload's
-- tasks to end deletes it: its index 'upload:<token>' then meets neither INIT nor CURRENT), ARGV[10] JSON of the
-- key templates (keys.slot_keys), ARGV[11..13] optionally (a worker finishing the task) the run-time histogram's hash,
-- the field of its bucket and the seconds, counted only when the transition is made (so once, even if repeated)
-- returns {status, state found}: as UPDATE, 'leased' when a reap found the task not lost, or 'waiting' when a claim
-- found its instance's slots taken (the task then waits in INIT, says why in 'waiting' and is no longer held)
""" + _UPDATE_ARGS + _EMIT + """
local lease_key, held_key, lease_op, cfg = KEYS[2], KEYS[3], ARGV[6], cjson.decode(ARGV[10])
""" + _SLOTS + _STATE_CHECK + """
-- a reap is for a held task whose lease has expired and whose holder no longer beats, checked here at once: between
-- the reaper's look and this, the task may have been claimed, or have gone to wait for a slot (no longer held)
if lease_op == 'reap' and (held_alive(id) or redis.call('EXISTS', lease_key) == 1
                           or not redis.call('ZSCORE', held_key, id)) then
  return {'leased', state}
end
local function stop_waiting()
  if redis.call('HEXISTS', hash, 'waiting') == 0 then return end
  local instance = redis.call('HGET', hash, 'instance')
  redis.call('ZREM', key('waiting', instance), id)
  redis.call('ZREM', key('woken', instance), id)
  redis.call('HDEL', hash, 'waiting')
end
if string.sub(lease_op, 1, 6) == 'claim:' then
  local instance = redis.call('HGET', hash, 'instance')
  local limit = tonumber(redis.call('HGET', key('instance', instance), 'max_concurrent') or '')
  if limit and slots_in_use(instance) >= limit then
    redis.call('ZADD', key('waiting', instance), id, id)
    redis.call('ZREM', key('woken', instance), id)
    redis.call('SADD', cfg['waiters'], instance)
    redis.call('HSET', hash, 'waiting', 'instance ' .. instance .. ' at max_concurrent ' .. limit)
    redis.call('DEL', lease_key)
    redis.call('ZREM', held_key, id)
    return {'waiting', state}
  end
  stop_waiting()
  if limit then
    redis.call('SADD', key('slots', instance), id)
    redis.call('HSET', hash, 'slot', instance)
  end
end
""" + _APPLY_CHANGES + """
local ttl, owner = string.match(lease_op, '^%a+:(%d+):(.*)$')
if ttl then
  redis.call('SET', lease_key, owner, 'EX', ttl)
  redis.call('SET', key('alive', owner), 1, 'EX', ttl)  -- it holds, so it beats: before its lease keeper first does
  redis.call('HSET', hash, 'holder', owner)
  local now = redis.call('TIME')  -- Redis's clock: the workers' may differ
  redis.call('ZADD', held_key, tonumber(now[1]) + tonumber(ttl), id)  -- its lease's deadline: what reapers look up
elseif lease_op == 'release' or lease_op == 'reap' then
  redis.call('DEL', lease_key)
  redis.call('ZREM', held_key, id)
  stop_waiting()
  local slot = redis.call('HGET', hash, 'slot')
  if slot then redis.call('SREM', key('slots', slot), id) end
  -- finished: the retention sweep finds it by its end time; EXPIRE is the backstop if no sweep runs
  redis.call('ZADD', KEYS[4], changes['end'] or redis.call('TIME')[1], id)
  for _, k in ipairs({hash, KEYS[5], KEYS[6]}) do redis.call('EXPIRE', k, ARGV[7]) end
  local upload = redis.call('HGET', hash, 'upload')
  if upload then
    local tasks = prefix .. 'upload:' .. upload
    if redis.call('ZINTERCARD', 2, tasks, prefix .. 'state:INIT', 'LIMIT', 1) == 0
        and redis.call('ZINTERCARD', 2, tasks, prefix .. 'state:CURRENT', 'LIMIT', 1) == 0 then
      redis.call('DEL', ARGV[9] .. upload)
    end
  end
end
local new_state = changes['state']
if new_state and new_state ~= cjson.null and new_state ~= state then
  emit(KEYS[7], ARGV[8], new_state == 'CURRENT' and 'started' or 'finished', id, hash)
  if new_state ~= 'CURRENT' then
    redis.call('XADD', KEYS[8], 'MAXLEN', '1', '*', 'end', '1')
    redis.call('EXPIRE', KEYS[8], """ + str(NOTIFY_KEEP_SECONDS) + """)  -- the followers see the task ended
  end
end
if (ARGV[11] or '') ~= '' then
  redis.call('HINCRBY', ARGV[11], ARGV[12], 1)
  redis.call('HINCRBYFLOAT', ARGV[11], 'sum', ARGV[13])
end
return {'ok', state}
"""

WAKE = WRITES + """
-- Give an instance's free max_concurrent slots to its oldest waiting tasks: each moves to the woken set, and its
-- caller gives it a job, whose claim takes the slot (or, taken meanwhile, waits again). A woken task whose claim has
-- not come after ARGV[3] ms (its job was lost) is woken again. Without a limit (removed) every waiter is woken.
-- ARGV[1] the instance id, ARGV[2] JSON of the key templates (keys.slot_keys), ARGV[3] ms, ARGV[4] at most this many
-- returns the ids of the tasks woken
local instance, cfg, again_ms, most = ARGV[1], cjson.decode(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
""" + _SLOTS + """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local waiting, woken = key('waiting', instance), key('woken', instance)
local woke, pending = {}, 0
local found = redis.call('ZRANGE', woken, 0, -1, 'WITHSCORES')
for i = 1, #found, 2 do
  local id = found[i]
  if redis.call('HGET', key('task', id), 'state') ~= 'INIT' then
    redis.call('ZREM', woken, id)
  else
    pending = pending + 1
    if tonumber(found[i + 1]) + again_ms <= now_ms and #woke < most then
      redis.call('ZADD', woken, now_ms, id)
      table.insert(woke, id)
    end
  end
end
local limit = tonumber(redis.call('HGET', key('instance', instance), 'max_concurrent') or '')
local free = most
if limit then free = math.min(most, limit - slots_in_use(instance) - pending) end
while free > 0 do
  local first = redis.call('ZPOPMIN', waiting)
  if #first == 0 then break end
  if redis.call('HGET', key('task', first[1]), 'state') == 'INIT' then
    redis.call('ZADD', woken, now_ms, first[1])
    table.insert(woke, first[1])
    free = free - 1
  end
end
if redis.call('ZCARD', waiting) == 0 and redis.call('ZCARD', woken) == 0 then
  redis.call('SREM', cfg['waiters'], instance)
end
return woke
"""

# A fragment: new ids for the records (local records), taken with one INCRBY; local ids.
_ALLOCATE_IDS = """
local last = redis.call('INCRBY', counter, #records)
local ids = {}
for i, r in ipairs(records) do
  ids[i] = last - #records + i
  r['id'] = tostring(ids[i])
end
"""

# A fragment: store each record under its id and add it to its indexes.
_WRITE_RECORDS = _INDEX_VALUE + """
for i, r in ipairs(records) do
  local id = ids[i]
  for f, v in pairs(r) do redis.call('HSET', record_prefix .. id, f, v) end
  redis.call('ZADD', index_prefix .. 'all', id, id)
  for _, f in ipairs(indexed) do
    local v = index_value(f, function(field) return r[field] or false end)
    if v then redis.call('ZADD', index_prefix .. f .. ':' .. v, id, id) end
  end
end
"""

_CREATE_ARGS = """
local counter, record_prefix, index_prefix = KEYS[1], ARGV[1], ARGV[2]
local indexed, records = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
"""

CREATE = WRITES + """
-- Store several records at once with new ids.
-- KEYS[1] their kind's id counter
-- ARGV[1] record key prefix, ARGV[2] index prefix, ARGV[3] JSON list of indexed fields, ARGV[4] JSON list of records
-- returns {'ok', ids}
""" + _CREATE_ARGS + _ALLOCATE_IDS + _WRITE_RECORDS + """
return {'ok', ids}
"""

_CREATE_TASKS = """
-- Store tasks at once with new ids and the RQ job of each, all or none: none if one's instance is missing or not
-- ACTIVE, or if one of its run_after tasks does not exist (checked here, so a dependency deleted meanwhile is seen).
-- Tasks due now and waiting for nothing share jobs, up to ARGV[8] a job; the others get one each. A job's id is
-- ARGV[9] followed by the id of its first task, so it is known before RQ has it.
-- KEYS[1] the task id counter, KEYS[2] the events stream (a 'created' event per task), KEYS[3] the layout mark
-- ARGV[1..4] as CREATE, ARGV[5] the instance key prefix, ARGV[6] JSON list, per task, of its run_after ids (strings),
-- ARGV[7] now (unix time), ARGV[8] tasks per job, ARGV[9] the job id prefix, ARGV[10] the events stream's length
-- returns {'ok', ids, per task the jobs of its unfinished dependencies (space-separated), per task its job, the
-- last 'created' event's id (a wait reads on from there)},
-- or {'instance', index of the refused task, 'missing' or the instance's state},
-- or {'run_after', index of the refused task, index of the missing dependency}
""" + _CREATE_ARGS + """
local instance_prefix, run_after, now = ARGV[5], cjson.decode(ARGV[6]), tonumber(ARGV[7])
local per_job, job_prefix = tonumber(ARGV[8]), ARGV[9]
local after = {}
for i, r in ipairs(records) do
  local state = redis.call('HGET', instance_prefix .. r['instance'], 'state')
  if not state then return {'instance', i - 1, 'missing'} end
  if state ~= 'ACTIVE' then return {'instance', i - 1, state} end
  local jobs = {}
  for j, dependency in ipairs(run_after[i]) do
    local found = redis.call('HMGET', record_prefix .. dependency, 'state', 'job')
    if not found[1] then return {'run_after', i - 1, j - 1} end
    if (found[1] == 'INIT' or found[1] == 'CURRENT') and found[2] then table.insert(jobs, found[2]) end
  end
  after[i] = jobs
end
""" + _ALLOCATE_IDS + """
if last == #records then redis.call('SET', KEYS[3], '""" + str(LAYOUT) + """', 'NX') end  -- the first tasks: all new
local group, in_group = nil, 0
local waits, jobs = {}, {}
for i, r in ipairs(records) do
  if #after[i] > 0 or tonumber(r['scheduled_at'] or '0') > now then
    r['job'] = job_prefix .. ids[i]
  else
    if group == nil or in_group == per_job then group, in_group = ids[i], 0 end
    in_group = in_group + 1
    r['job'] = job_prefix .. group
  end
  waits[i], jobs[i] = table.concat(after[i], ' '), r['job']
end
""" + _WRITE_RECORDS + _EMIT + """
local position = '0-0'
for i, id in ipairs(ids) do position = emit(KEYS[2], ARGV[10], 'created', id, record_prefix .. id) end
return {'ok', ids, waits, jobs, position}
"""
CREATE_TASKS = WRITES + _CREATE_TASKS

DEPENDENCIES = READS + """
-- What queueing dependents needs at once, whatever their number: each job's status, each dependency task's state.
-- KEYS[1 .. ARGV[1]] the jobs' hashes (RQ's), then the tasks' hashes
-- returns {statuses (false: no such job), per task {state, job} (false: none)}
local jobs, statuses, tasks = tonumber(ARGV[1]), {}, {}
for i = 1, jobs do statuses[i] = redis.call('HGET', KEYS[i], 'status') end
for i = jobs + 1, #KEYS do table.insert(tasks, redis.call('HMGET', KEYS[i], 'state', 'job')) end
return {statuses, tasks}
"""

# A fragment: unindex(record, id, index_prefix, fields) takes a record out of all its indexes (before it goes).
_UNINDEX = _INDEX_VALUE + """
local function unindex(record, record_id, index_prefix, fields)
  local function get(f) return redis.call('HGET', record, f) end
  for _, f in ipairs(fields) do
    local v = index_value(f, get)
    if v then redis.call('ZREM', index_prefix .. f .. ':' .. v, record_id) end
  end
  redis.call('ZREM', index_prefix .. 'all', record_id)
end
"""

DELETE = ALLOW_OOM + """
-- Delete one record, its sub-keys and its index entries, if its state allows and it is not busy.
-- KEYS[1] the record's hash, KEYS[2 .. 1 + ARGV[5]] its sub-keys,
-- then optionally busy indexes: the first intersected with each of the others must be empty
-- ARGV[1] id, ARGV[2] index prefix, ARGV[3] JSON list of indexed fields, ARGV[4] JSON list of allowed states,
-- ARGV[5] how many sub-keys, ARGV[6] JSON list of the records that go with it (an instance's notes), each
-- {ids: the index of their ids, record: their key prefix, prefix: their index prefix, indexed: their indexed fields}
-- returns {status, state found}: status 'ok', 'missing', 'state' or 'busy'
"""  + """
local hash = KEYS[1]
local id, prefix, indexed, allowed = ARGV[1], ARGV[2], cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local busy = 2 + tonumber(ARGV[5])
""" + _UNINDEX + _STATE_CHECK + """
for i = busy + 1, #KEYS do
  if redis.call('ZINTERCARD', 2, KEYS[busy], KEYS[i], 'LIMIT', 1) > 0 then return {'busy', state} end
end
for _, child in ipairs(cjson.decode(ARGV[6])) do
  for _, child_id in ipairs(redis.call('ZRANGE', child['ids'], 0, -1)) do
    unindex(child['record'] .. child_id, child_id, child['prefix'], child['indexed'])
    redis.call('DEL', child['record'] .. child_id)
  end
  redis.call('DEL', child['ids'])
end
unindex(hash, id, prefix, indexed)
for i = 1, busy - 1 do redis.call('DEL', KEYS[i]) end
return {'ok', state}
"""

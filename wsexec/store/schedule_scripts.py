"""The Lua scripts of recurring schedules, built on the record fragments of wsexec.store.scripts (whose module
docstring says how KEYS, ARGV and the shebang flags are used)."""

from __future__ import annotations

from wsexec.store.bookkeeping_scripts import AUDIT_PUSH
from wsexec.store.scripts import (
    _ALLOCATE_IDS,
    _APPLY_CHANGES,
    _CREATE_ARGS,
    _CREATE_TASKS,
    _STATE_CHECK,
    _UPDATE_ARGS,
    _WRITE_RECORDS,
    WRITES,
)

FIRE_SCHEDULE = WRITES + """
-- A schedule's fire claimed and done in one step, so that of the schedulers that found it due exactly one does it and
-- none can leave it half done: its next_run moves on only if it is still the one read (and the schedule unchanged),
-- and in the same step its tasks are stored as CREATE_TASKS stores them (unless the previous run is still going and
-- the overlap policy is 'skip'), its outcome recorded and audited.
-- KEYS and ARGV as CREATE_TASKS, then one more ARGV: the claim, JSON {schedule: its hash, due: the due zset, id,
-- expected: next_run as read, revision: as read, next: the next_run after this fire, fire: the fire time to run (or
-- absent: only missed ones), missed: how many were not run, overlap: 'skip' or 'allow', running: the task indexes
-- {tasks: its tasks, init, current}, error: why its tasks could not be made (or absent), audit: {key, bytes, keep,
-- max_bytes, entry} (as AUDIT_ADD)}
-- returns {'claimed'} when another scheduler did it first or the schedule changed meanwhile, or
-- {'ok', outcome ('created', 'skipped', 'error' or 'missed'), task ids, per task the jobs it waits for, error}
""" + """
local claim = cjson.decode(table.remove(ARGV))
local found = redis.call('HMGET', claim['schedule'], 'next_run', 'revision')
if found[1] ~= claim['expected'] or (found[2] or '0') ~= claim['revision'] then return {'claimed'} end
local function create_tasks()
""" + _CREATE_TASKS + """
end
local outcome, ids, waits, err = 'missed', {}, {}, claim['error'] or ''
if claim['fire'] then
  local running = claim['running']
  if claim['overlap'] == 'skip' and (redis.call('ZINTERCARD', 2, running['tasks'], running['init'], 'LIMIT', 1) > 0
      or redis.call('ZINTERCARD', 2, running['tasks'], running['current'], 'LIMIT', 1) > 0) then
    outcome, err = 'skipped', 'the previous run is still going (overlap: skip)'
  elseif err ~= '' then
    outcome = 'error'
  else
    local created = create_tasks()
    if created[1] == 'ok' then
      outcome, ids, waits = 'created', created[2], created[3]
    else
      outcome = 'error'
      err = 'not created: ' .. created[1] .. ' of task ' .. created[2] .. ' refused (' .. tostring(created[3]) .. ')'
      if created[1] == 'instance' then
        local instance = cjson.decode(ARGV[4])[created[2] + 1]['instance']
        err = 'instance ' .. instance .. (created[3] == 'missing' and ' does not exist' or
                                          (' is ' .. created[3] .. ', not ACTIVE'))
      end
    end
  end
end
local schedule = claim['schedule']
redis.call('HSET', schedule, 'next_run', claim['next'], 'last_outcome', outcome)
if claim['fire'] then redis.call('HSET', schedule, 'last_run', claim['fire']) end
if #ids > 0 then redis.call('HSET', schedule, 'last_tasks', cjson.encode(ids)) end
if err ~= '' then redis.call('HSET', schedule, 'last_error', err) else redis.call('HDEL', schedule, 'last_error') end
if claim['missed'] > 0 then redis.call('HINCRBY', schedule, 'missed', claim['missed']) end
redis.call('ZADD', claim['due'], claim['next'], claim['id'])
""" + AUDIT_PUSH + """
local audit = claim['audit']
local detail = audit['entry']['detail']
detail['outcome'] = outcome
if #ids > 0 then detail['tasks'] = ids end
if err ~= '' then detail['error'] = err end
audit_push(audit['key'], audit['bytes'], cjson.encode(audit['entry']), tonumber(audit['keep']),
           tonumber(audit['max_bytes']))
return {'ok', outcome, ids, waits, err}
"""

CREATE_SCHEDULE = WRITES + """
-- Store a schedule with a new id and, if it has a next_run (enabled), enter it in the due zset there.
-- KEYS[1] the schedule id counter, KEYS[2] the due zset
-- ARGV[1..4] as CREATE (one record)
-- returns {'ok', ids}
""" + _CREATE_ARGS + _ALLOCATE_IDS + _WRITE_RECORDS + """
if records[1]['next_run'] then redis.call('ZADD', KEYS[2], records[1]['next_run'], ids[1]) end
return {'ok', ids}
"""

UPDATE_SCHEDULE = WRITES + """
-- Change a schedule's fields as UPDATE does, count its revision (a fire prepared from the old fields is refused) and
-- move it in the due zset to its new next_run (null: out of it, disabled).
-- KEYS[1] its hash, KEYS[2] the due zset
-- ARGV[1..5] as UPDATE
-- returns {status, ''}: status 'ok' or 'missing'
""" + _UPDATE_ARGS + _STATE_CHECK + _APPLY_CHANGES + """
redis.call('HINCRBY', hash, 'revision', 1)
local next_run = changes['next_run']
if next_run == cjson.null then
  redis.call('ZREM', KEYS[2], id)
elseif next_run then
  redis.call('ZADD', KEYS[2], next_run, id)
end
return {'ok', state}
"""

"""/wsexec/schedules: recurring tasks. template.py (no Flask) is shared with the workers' scheduler loop."""

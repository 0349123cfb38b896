"""Alerts: rules over each refresh, incidents with for-durations and hysteresis, delivery through Apprise.

``rules`` (sync): the rule kinds and what each reads of a refresh (sources' health, the lifecycle
flags, the totals); ``incidents`` (sync): the state machine, pending -> firing -> resolved, with
grouping, reminders and silences; ``messages`` (sync): the notifications' words; ``store``
(sync, ORM): rules, silences, incidents and the outbox in the database; ``delivery`` (sync, a
thread): Apprise with retries and backoff; ``engine`` (async edge over a worker thread): the
producer's hook.
"""

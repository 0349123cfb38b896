"""The history store (sync ORM code, with an async edge in ``recorder``): what NAT forgets, kept.

NAT keeps nothing: idle users vanish with their counters and a restart clears everything. The
parts, each with one job:

- ``recorder``: the snapshot listener, the async edge; writes run in one worker thread.
- ``lives``: tells lives apart (new life, same life back, ended) and decides what to write.
- ``samples``: writes sample rows (COPY on PostgreSQL) and the totals row.
- ``latency``: the NAT companions' figures in a sample (histogram changes, queue) and their sums.
- ``rollup``: hourly roll-ups and pruning by the retention periods.
- ``query``: window stats (rates) and chart series.
- ``ended``: users that left, kept as long as their lives are (the one retention rule).
- ``flags``: the lifecycle flags as small rule objects.
"""

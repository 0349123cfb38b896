"""The history store (sync ORM code, with an async edge in ``recorder``): what NAT forgets, kept.

NAT keeps nothing: idle users vanish with their counters and a restart clears everything. The
parts, each with one job:

- ``recorder``: the snapshot listener, the async edge; writes run in one worker thread.
- ``lives``: tells lives apart (new life, same life back, ended) and decides what to write.
- ``samples``: writes sample rows (COPY on PostgreSQL) and the totals row.
- ``latency``: the NAT companions' figures in a sample (histogram changes, queue) and their sums.
- ``tokens``: a sample's tokens per model, cost when used and unpriced tokens (bytes, deltas, sums);
  ``llm_models`` writes them (model names interned, prices read once per refresh).
- ``rollup``: hourly roll-ups and pruning by the retention periods.
- ``query``: window stats (rates) and chart series.
- ``spend``: tokens and cost over a window (a page of users, everyone, the fleet, the top users);
  ``token_series``: their charts.
- ``ended``: users that left, kept as long as their lives are (the one retention rule).
- ``flags``: the lifecycle flags as small rule objects.
"""

-- EXPLAIN shows the key ranges a time window reads.
EXPLAIN SELECT count(*) FROM events
WHERE occurred_at >= TIMESTAMPTZ '2026-05-01T10:00:00+05:00'
  AND occurred_at < TIMESTAMPTZ '2026-05-01T11:00:00+05:00'

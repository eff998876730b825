-- The place-based offences of the last 14 local days (the report's day and the 13
-- before): the events that recurrence.sql and report_repeat_cells.sql
-- study (held as the table `recent_offences`; not stored).
--
-- Parameters:
--   $recent_start  TIMESTAMPTZ  the first instant of the day 13 days before the report's
--   $day_end       TIMESTAMPTZ  the first instant of the day after the report's
--
-- Place-based offences are incidents other than fraud and cybercrime:
-- where a fraud or cybercrime happened is where its victim was reached,
-- not a place that draws offences, so it says nothing about repeats of a
-- place. Events outside every mahalla are left out (they have no district
-- to compare within). `t` is the time in seconds since 1970 (with its
-- microseconds), so that time differences are plain subtraction; `seq`
-- orders the offences by time, then id; `stratum` numbers the pairs of
-- district and category (near repeats are counted within one), so that
-- recurrence.sql sorts numbers, not names.
SELECT
    id,
    region_id,
    district_id,
    mahalla_id,
    cell,
    category,
    occurred_at,
    date_part('epoch', occurred_at) AS t,
    row_number() OVER (ORDER BY occurred_at, id) AS seq,
    dense_rank() OVER (ORDER BY district_id, category) AS stratum
FROM incidents
WHERE occurred_at >= $recent_start
    AND occurred_at < $day_end
    AND category NOT IN ('fraud', 'cybercrime')
    AND mahalla_id IS NOT NULL

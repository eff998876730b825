-- Difficult mahallas: the mahallas whose crime situation the rule below
-- calls difficult on $day, and those it called difficult the day before
-- (status `recovered` when no longer), with what made them so, how it goes,
-- and the inspector who answers for them. Stored as
-- `daily_report_difficult` and held as the table `difficult` that
-- report_scopes.sql counts per scope.
--
-- Parameters:
--   $day                        DATE         the local (Asia/Tashkent) date
--   $day_start                  TIMESTAMPTZ  its first instant
--   $day_end                    TIMESTAMPTZ  the first instant of the next day
--   $difficult_level            VARCHAR      lowest escalation level that counts: 'elevated', 'high' or 'critical' (default 'elevated')
--   $difficult_escalation_days  BIGINT       N (default 3)
--   $difficult_z                DOUBLE       lowest 7-day change score that counts (default 2.0)
--   $difficult_z_days           BIGINT       k (default 3)
--
-- The rule, over the 14 days ending on $day:
--   - an escalation day: a day on which an escalation of the mahalla at
--     $difficult_level or above was open (from the day it was opened to the
--     day it was resolved; escalations judged false alarms do not count);
--   - a score day: a day whose 7-day change score of offences (z7) was
--     $difficult_z or more: the day's own score (`scores`) and those of the
--     13 days before from their stored reports (`daily_reports`; a day
--     without a stored report, or without enough history for a score, is
--     not a score day: days_scored says how many had one);
--   - a mahalla is difficult when it had at least $difficult_escalation_days
--     escalation days or at least $difficult_z_days score days. The day
--     before is judged the same way over the 14 days ending on it, so
--     `newly` marks a mahalla difficult on $day and not the day before, and
--     `recovered` one difficult the day before and not on $day.
--
-- difficult_since: the first day of the mahalla's unbroken run of difficult
-- days: $day for a newly difficult one, else carried from the day before's
-- stored row (without one, the first escalation or score day of the 14).
--
-- Escalations are read as they are now: a report made again for a past day
-- sees an escalation marked a false alarm since as never having counted.
--
-- Trend: offences of the 7 days ending on $day (offences_7d) against the 7
-- before (offences_prev_7d), from `mahalla_days`; 'rising' when
-- sqrt(2) * (sqrt(a) - sqrt(b)) >= 2 (two Poisson counts differing by about
-- two standard deviations), 'falling' when <= -2, 'steady' otherwise.
--
-- open_escalations: escalations of the mahalla (any level) open at the end
-- of $day; open_level: the highest level among them.
--
-- Days are counted from $day_start in whole days of 86,400 s: a local day
-- of Asia/Tashkent, which keeps no daylight saving time.
WITH
level_rank AS (
    SELECT CASE $difficult_level
        WHEN 'elevated' THEN 1
        WHEN 'high' THEN 2
        WHEN 'critical' THEN 3
    END AS lowest
),
-- Days back from $day: 0 is $day, 14 the day two weeks before.
back AS (
    SELECT unnest(generate_series(0, 14)) AS n
),
ranked_escalations AS (
    SELECT
        mahalla_id,
        CASE CAST(level AS VARCHAR)
            WHEN 'elevated' THEN 1
            WHEN 'high' THEN 2
            WHEN 'critical' THEN 3
            ELSE 0
        END AS rank,
        CAST(level AS VARCHAR) AS level,
        CAST(status AS VARCHAR) AS status,
        opened_at,
        closed_at
    FROM escalations
    WHERE opened_at < $day_end
        -- open at some time of the 15 days judged (or still open)
        AND (closed_at IS NULL
            OR date_part('epoch', closed_at) >= date_part('epoch', $day_start) - 14 * 86400)
),
raised AS (
    -- the days back on which each counting escalation was open: from
    -- `first_back` (when opened) down to `last_back` (when resolved, 0 when
    -- still open at the end of $day)
    SELECT
        e.mahalla_id,
        CAST(ceil((date_part('epoch', $day_start) - date_part('epoch', e.opened_at)) / 86400) AS BIGINT) AS first_back,
        -- (resolved exactly at a midnight: not open on the day it begins)
        CASE
            WHEN e.closed_at IS NULL OR e.closed_at >= $day_end THEN 0
            ELSE CAST(floor((date_part('epoch', $day_start) - date_part('epoch', e.closed_at)) / 86400) AS BIGINT) + 1
        END AS last_back
    FROM ranked_escalations e
    CROSS JOIN level_rank l
    WHERE e.rank >= l.lowest AND e.status <> 'false_alarm'
),
escalation_days AS (
    SELECT DISTINCT r.mahalla_id, b.n
    FROM raised r
    JOIN back b ON b.n <= r.first_back AND b.n >= r.last_back
),
scored_days AS (
    -- every day of the 15 with a z7 of the mahalla: the stored reports of
    -- the days before, and the day's own score
    SELECT
        scope_id AS mahalla_id,
        CAST((date_part('epoch', CAST($day AS DATE)) - date_part('epoch', date)) / 86400 AS BIGINT) AS n,
        z7
    FROM daily_reports
    WHERE scope = 'mahalla'
        AND date >= CAST($day AS DATE) - 14
        AND date < CAST($day AS DATE)
        AND z7 IS NOT NULL
    UNION ALL
    SELECT scope_id, 0, z7
    FROM scores
    WHERE scope = 'mahalla' AND measure = 'offences' AND z7 IS NOT NULL
),
flags AS (
    SELECT mahalla_id, n, max(escalation) AS escalation, max(scored) AS scored, max(high_z) AS high_z
    FROM (
        SELECT mahalla_id, n, 1 AS escalation, 0 AS scored, 0 AS high_z FROM escalation_days
        UNION ALL
        SELECT
            mahalla_id,
            n,
            0,
            1,
            CASE WHEN z7 >= $difficult_z THEN 1 ELSE 0 END
        FROM scored_days
    ) f
    GROUP BY mahalla_id, n
),
judged AS (
    -- the 14 days ending on $day (n 0..13) and on the day before (1..14)
    SELECT
        mahalla_id,
        sum(CASE WHEN n <= 13 THEN escalation ELSE 0 END) AS escalation_days,
        sum(CASE WHEN n <= 13 THEN high_z ELSE 0 END) AS score_days,
        sum(CASE WHEN n <= 13 AND (escalation = 1 OR high_z = 1) THEN 1 ELSE 0 END) AS difficult_days,
        sum(CASE WHEN n <= 13 THEN scored ELSE 0 END) AS days_scored,
        -- as INTEGER: a date less an INTEGER is a date in DuckDB too
        CAST(max(CASE WHEN n <= 13 AND (escalation = 1 OR high_z = 1) THEN n END) AS INTEGER)
            AS first_flag_back,
        CAST(max(CASE WHEN n >= 1 AND (escalation = 1 OR high_z = 1) THEN n END) AS INTEGER)
            AS first_flag_back_before,
        sum(CASE WHEN n >= 1 THEN escalation ELSE 0 END) AS escalation_days_before,
        sum(CASE WHEN n >= 1 THEN high_z ELSE 0 END) AS score_days_before
    FROM flags
    GROUP BY mahalla_id
),
status AS (
    SELECT
        j.*,
        j.escalation_days >= $difficult_escalation_days
            OR j.score_days >= $difficult_z_days AS difficult,
        j.escalation_days_before >= $difficult_escalation_days
            OR j.score_days_before >= $difficult_z_days AS difficult_before
    FROM judged j
),
listed AS (
    SELECT * FROM status WHERE difficult OR difficult_before
),
before AS (
    SELECT scope_id AS mahalla_id, difficult_since
    FROM daily_report_difficult
    WHERE date = CAST($day AS DATE) - 1 AND status = 'difficult'
),
trend AS (
    SELECT
        mahalla_id,
        sum(CASE WHEN date > CAST($day AS DATE) - 7 THEN offences ELSE 0 END) AS offences_7d,
        sum(CASE WHEN date <= CAST($day AS DATE) - 7 THEN offences ELSE 0 END) AS offences_prev_7d
    FROM mahalla_days
    WHERE date > CAST($day AS DATE) - 14 AND date <= CAST($day AS DATE)
        AND mahalla_id IS NOT NULL
    GROUP BY mahalla_id
),
open_now AS (
    SELECT
        mahalla_id,
        count(*) AS open_escalations,
        max(rank) AS open_rank
    FROM ranked_escalations
    WHERE closed_at IS NULL OR closed_at >= $day_end
    GROUP BY mahalla_id
)
SELECT
    CAST($day AS DATE) AS date,
    'mahalla' AS scope,
    m.mahalla_id AS scope_id,
    m.name,
    m.region_id,
    m.district_id,
    m.inspector,
    CASE WHEN s.difficult THEN 'difficult' ELSE 'recovered' END AS status,
    s.difficult AND NOT s.difficult_before AS newly,
    CASE
        WHEN s.difficult AND s.difficult_before
            THEN coalesce(b.difficult_since, CAST($day AS DATE) - s.first_flag_back)
        WHEN s.difficult THEN CAST($day AS DATE)
        ELSE coalesce(b.difficult_since, CAST($day AS DATE) - s.first_flag_back_before)
    END AS difficult_since,
    s.difficult_days,
    s.escalation_days,
    s.score_days,
    s.days_scored,
    coalesce(t.offences_7d, 0) AS offences_7d,
    coalesce(t.offences_prev_7d, 0) AS offences_prev_7d,
    CASE
        WHEN sqrt(2.0) * (sqrt(CAST(coalesce(t.offences_7d, 0) AS DOUBLE)) - sqrt(CAST(coalesce(t.offences_prev_7d, 0) AS DOUBLE))) >= 2.0 THEN 'rising'
        WHEN sqrt(2.0) * (sqrt(CAST(coalesce(t.offences_7d, 0) AS DOUBLE)) - sqrt(CAST(coalesce(t.offences_prev_7d, 0) AS DOUBLE))) <= -2.0 THEN 'falling'
        ELSE 'steady'
    END AS trend,
    coalesce(o.open_escalations, 0) AS open_escalations,
    CASE o.open_rank
        WHEN 1 THEN 'elevated'
        WHEN 2 THEN 'high'
        WHEN 3 THEN 'critical'
    END AS open_level
FROM listed s
JOIN mahallas m ON m.mahalla_id = s.mahalla_id
LEFT JOIN before b ON b.mahalla_id = s.mahalla_id
LEFT JOIN trend t ON t.mahalla_id = s.mahalla_id
LEFT JOIN open_now o ON o.mahalla_id = s.mahalla_id
ORDER BY
    CASE WHEN s.difficult THEN 0 ELSE 1 END,
    s.difficult_days DESC,
    m.mahalla_id

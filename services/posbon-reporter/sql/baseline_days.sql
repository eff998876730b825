-- The days a report's change scores are computed from: for each scope (the
-- nation, each region, district and mahalla of the registry, and
-- `unassigned`), each measure and each covered day of the 28 before $day
-- (`base` = 1), and $day itself (`base` = 0), the count `x` (zeros
-- included). scores.sql reads these rows as the table `baseline_days`; to
-- run it by hand, put this query in as a CTE of that name.
--
-- Measures: `offences`, `camera_alerts`, and the focus groups of
-- report_focus_groups.sql (`victim_minor`, `victim_youth`, `victim_woman`,
-- `offender_minor`, `offender_youth`, `domestic`, `offender_youth_drugs`;
-- days stored before they were counted read as 0).
--
-- A day counts ("is covered") when the system was receiving events on it:
-- the nation's events that day are at least half of the median day's in
-- the window. A day without events, or cut short by an outage or by the
-- start of the data, is left out rather than counted as a day without
-- crime.
--
-- Parameters:
--   $day           DATE         the local (Asia/Tashkent) date
--   $base7_start   DATE         $day - 7 days
--   $base28_start  DATE         $day - 28 days
WITH
-- The figures of the 28 days before and of the day itself, per unit: a
-- mahalla of the registry, or `_unassigned` for events outside every
-- mahalla (or in a mahalla the registry no longer has).
facts AS (
    SELECT
        d.date,
        coalesce(m.mahalla_id, '_unassigned') AS mahalla_id,
        sum(d.events) AS events,
        sum(d.incidents) AS incidents,
        sum(d.camera_alerts) AS camera_alerts,
        sum(d.fraud_flags) AS fraud_flags,
        sum(d.offences) AS offences,
        sum(d.cyber) AS cyber,
        sum(d.harm) AS harm,
        sum(coalesce(d.victim_minor, 0)) AS victim_minor,
        sum(coalesce(d.victim_youth, 0)) AS victim_youth,
        sum(coalesce(d.victim_woman, 0)) AS victim_woman,
        sum(coalesce(d.offender_minor, 0)) AS offender_minor,
        sum(coalesce(d.offender_youth, 0)) AS offender_youth,
        sum(coalesce(d.domestic, 0)) AS domestic,
        sum(coalesce(d.offender_youth_drugs, 0)) AS offender_youth_drugs
    FROM mahalla_days d
    LEFT JOIN mahallas m ON m.mahalla_id = d.mahalla_id
    WHERE d.date >= $base28_start AND d.date <= $day
    GROUP BY d.date, coalesce(m.mahalla_id, '_unassigned')
),
areas AS (
    -- every mahalla of the registry, and the unassigned unit
    SELECT region_id, district_id, mahalla_id, 1 AS mahallas FROM mahallas
    UNION ALL
    SELECT CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), '_unassigned', 0
),
-- 1. The covered days of the 28 before, and the day itself.
nation_days AS (
    SELECT date, sum(events) AS events
    FROM facts
    WHERE date < $day
    GROUP BY date
),
covered AS (
    SELECT
        date,
        CASE WHEN date >= $base7_start THEN 1 ELSE 0 END AS in7,
        date_part('dow', date) AS weekday,
        1 AS base
    FROM nation_days
    WHERE events > 0
        AND 2 * events >= (SELECT median(CAST(events AS DOUBLE)) FROM nation_days WHERE events > 0)
    UNION ALL
    SELECT
        CAST($day AS DATE) AS date,
        0 AS in7,
        date_part('dow', CAST($day AS DATE)) AS weekday,
        0 AS base
),
-- Each unit's counts on each covered day (zeros included), per measure,
-- summed to every scope.
unit_days AS (
    SELECT
        a.region_id,
        a.district_id,
        a.mahalla_id,
        c.date,
        c.in7,
        c.weekday,
        c.base,
        coalesce(f.offences, 0) AS offences,
        coalesce(f.camera_alerts, 0) AS camera_alerts,
        coalesce(f.victim_minor, 0) AS victim_minor,
        coalesce(f.victim_youth, 0) AS victim_youth,
        coalesce(f.victim_woman, 0) AS victim_woman,
        coalesce(f.offender_minor, 0) AS offender_minor,
        coalesce(f.offender_youth, 0) AS offender_youth,
        coalesce(f.domestic, 0) AS domestic,
        coalesce(f.offender_youth_drugs, 0) AS offender_youth_drugs
    FROM areas a
    CROSS JOIN covered c
    LEFT JOIN facts f ON f.mahalla_id = a.mahalla_id AND f.date = c.date
),
-- Summed to every scope with all the measures side by side (one row per
-- scope and day), then one row per measure: grouping each measure's rows
-- apart would hold nine times the groups (at national scale, past the
-- report's memory limit).
grouped_days AS (
    SELECT
        date,
        in7,
        weekday,
        base,
        region_id,
        district_id,
        mahalla_id,
        grouping(region_id) AS g_region,
        grouping(district_id) AS g_district,
        grouping(mahalla_id) AS g_mahalla,
        sum(offences) AS offences,
        sum(camera_alerts) AS camera_alerts,
        sum(victim_minor) AS victim_minor,
        sum(victim_youth) AS victim_youth,
        sum(victim_woman) AS victim_woman,
        sum(offender_minor) AS offender_minor,
        sum(offender_youth) AS offender_youth,
        sum(domestic) AS domestic,
        sum(offender_youth_drugs) AS offender_youth_drugs
    FROM unit_days
    GROUP BY GROUPING SETS (
        (date, in7, weekday, base),
        (date, in7, weekday, base, region_id),
        (date, in7, weekday, base, region_id, district_id),
        (date, in7, weekday, base, region_id, district_id, mahalla_id)
    )
),
scope_days AS (
    SELECT
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN region_id IS NULL THEN 'unassigned'
            WHEN g_district = 1 THEN 'region'
            WHEN g_mahalla = 1 THEN 'district'
            ELSE 'mahalla'
        END AS scope,
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN region_id IS NULL THEN '_unassigned'
            WHEN g_district = 1 THEN region_id
            WHEN g_mahalla = 1 THEN district_id
            ELSE mahalla_id
        END AS scope_id,
        date,
        in7,
        weekday,
        base,
        offences,
        camera_alerts,
        victim_minor,
        victim_youth,
        victim_woman,
        offender_minor,
        offender_youth,
        domestic,
        offender_youth_drugs
    FROM grouped_days
    WHERE g_region = 1 OR region_id IS NOT NULL OR g_mahalla = 0
),
measured AS (
    SELECT
        scope,
        scope_id,
        unnest([
            'offences',
            'camera_alerts',
            'victim_minor',
            'victim_youth',
            'victim_woman',
            'offender_minor',
            'offender_youth',
            'domestic',
            'offender_youth_drugs'
        ]) AS measure,
        date,
        in7,
        weekday,
        base,
        unnest([
            CAST(offences AS DOUBLE),
            CAST(camera_alerts AS DOUBLE),
            CAST(victim_minor AS DOUBLE),
            CAST(victim_youth AS DOUBLE),
            CAST(victim_woman AS DOUBLE),
            CAST(offender_minor AS DOUBLE),
            CAST(offender_youth AS DOUBLE),
            CAST(domestic AS DOUBLE),
            CAST(offender_youth_drugs AS DOUBLE)
        ]) AS x
    FROM scope_days
)
SELECT scope, scope_id, measure, date, in7, weekday, base, x
FROM measured
ORDER BY scope, scope_id, measure, date

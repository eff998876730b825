-- The daily situation report: one row per scope for one local day, from the
-- per-mahalla figures in `mahalla_days` (see mahalla_day.sql), the registry
-- and the escalations.
--
-- Scopes: the nation, each region, district and mahalla of the registry
-- (mahallas without events included: they are the crime-free ones), and
-- `unassigned` for events outside every mahalla (counted in the nation).
--
-- Parameters:
--   $day           DATE         the local (Asia/Tashkent) date
--   $day_start     TIMESTAMPTZ  its first instant
--   $day_end       TIMESTAMPTZ  the first instant of the next day
--   $base7_start   DATE         $day - 7 days
--   $base28_start  DATE         $day - 28 days
--
-- Baselines: the mean daily offences of the 7 and 28 days before $day.
-- Change against a baseline is a count-aware z score,
-- z = 2 (sqrt(observed) - sqrt(expected)) (variance-stabilised Poisson),
-- never a percentage: 1 offence against an expected 0.1 is z = 1.37, not
-- +900%. Sums of a scope are taken before the z, so a district's z is the
-- z of its total, not an average of its mahallas'.
WITH
today AS (
    SELECT * FROM mahalla_days WHERE date = $day
),
base7 AS (
    SELECT mahalla_id, sum(offences) AS offences
    FROM mahalla_days
    WHERE date >= $base7_start AND date < $day
    GROUP BY mahalla_id
),
base28 AS (
    SELECT mahalla_id, sum(offences) AS offences
    FROM mahalla_days
    WHERE date >= $base28_start AND date < $day
    GROUP BY mahalla_id
),
opened AS (
    SELECT mahalla_id, count(*) AS n
    FROM escalations
    WHERE opened_at >= $day_start AND opened_at < $day_end
    GROUP BY mahalla_id
),
closed AS (
    SELECT mahalla_id, count(*) AS n
    FROM escalations
    WHERE closed_at >= $day_start AND closed_at < $day_end
    GROUP BY mahalla_id
),
units AS (
    -- every mahalla of the registry
    SELECT
        m.region_id,
        m.district_id,
        m.mahalla_id,
        1 AS mahallas,
        CASE WHEN coalesce(t.offences, 0) = 0 THEN 1 ELSE 0 END AS crime_free,
        coalesce(t.events, 0) AS events,
        coalesce(t.incidents, 0) AS incidents,
        coalesce(t.camera_alerts, 0) AS camera_alerts,
        coalesce(t.fraud_flags, 0) AS fraud_flags,
        coalesce(t.offences, 0) AS offences,
        coalesce(t.cyber, 0) AS cyber,
        coalesce(t.harm, 0) AS harm,
        coalesce(b7.offences, 0) AS base7,
        coalesce(b28.offences, 0) AS base28,
        coalesce(o.n, 0) AS opened,
        coalesce(c.n, 0) AS closed
    FROM mahallas m
    LEFT JOIN today t ON t.mahalla_id = m.mahalla_id
    LEFT JOIN base7 b7 ON b7.mahalla_id = m.mahalla_id
    LEFT JOIN base28 b28 ON b28.mahalla_id = m.mahalla_id
    LEFT JOIN opened o ON o.mahalla_id = m.mahalla_id
    LEFT JOIN closed c ON c.mahalla_id = m.mahalla_id
    UNION ALL
    -- events outside every mahalla of the registry, with their baselines
    SELECT
        CAST(NULL AS VARCHAR) AS region_id,
        CAST(NULL AS VARCHAR) AS district_id,
        '_unassigned' AS mahalla_id,
        0 AS mahallas,
        0 AS crime_free,
        coalesce(sum(CASE WHEN d.date = $day THEN d.events END), 0) AS events,
        coalesce(sum(CASE WHEN d.date = $day THEN d.incidents END), 0) AS incidents,
        coalesce(sum(CASE WHEN d.date = $day THEN d.camera_alerts END), 0) AS camera_alerts,
        coalesce(sum(CASE WHEN d.date = $day THEN d.fraud_flags END), 0) AS fraud_flags,
        coalesce(sum(CASE WHEN d.date = $day THEN d.offences END), 0) AS offences,
        coalesce(sum(CASE WHEN d.date = $day THEN d.cyber END), 0) AS cyber,
        coalesce(sum(CASE WHEN d.date = $day THEN d.harm END), 0) AS harm,
        coalesce(sum(CASE WHEN d.date >= $base7_start AND d.date < $day THEN d.offences END), 0) AS base7,
        coalesce(sum(CASE WHEN d.date < $day THEN d.offences END), 0) AS base28,
        0 AS opened,
        0 AS closed
    FROM mahalla_days d
    LEFT JOIN mahallas m ON m.mahalla_id = d.mahalla_id
    WHERE d.date >= $base28_start AND d.date <= $day AND m.mahalla_id IS NULL
),
rolled AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        grouping(region_id) AS g_region,
        grouping(district_id) AS g_district,
        grouping(mahalla_id) AS g_mahalla,
        sum(mahallas) AS mahallas,
        sum(crime_free) AS crime_free_mahallas,
        sum(events) AS events,
        sum(incidents) AS incidents,
        sum(camera_alerts) AS camera_alerts,
        sum(fraud_flags) AS fraud_flags,
        sum(offences) AS offences,
        sum(cyber) AS cyber,
        sum(harm) AS harm,
        sum(base7) / 7.0 AS baseline7,
        sum(base28) / 28.0 AS baseline28,
        sum(opened) AS escalations_opened,
        sum(closed) AS escalations_closed
    FROM units
    GROUP BY ROLLUP (region_id, district_id, mahalla_id)
),
scoped AS (
    SELECT
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN region_id IS NULL THEN 'unassigned'
            WHEN g_district = 1 THEN 'region'
            WHEN g_mahalla = 1 THEN 'district'
            ELSE 'mahalla'
        END AS scope,
        *
    FROM rolled
    -- the rollup of the unassigned row to "region NULL" and "district NULL"
    -- means nothing: keep only its own row
    WHERE g_region = 1 OR region_id IS NOT NULL OR g_mahalla = 0
),
names AS (
    SELECT 'mahalla' AS scope, mahalla_id AS scope_id, name FROM mahallas
    UNION ALL
    SELECT DISTINCT 'district', district_id, district_name FROM mahallas
    UNION ALL
    SELECT DISTINCT 'region', region_id, region_name FROM mahallas
)
SELECT
    CAST($day AS DATE) AS date,
    s.scope,
    CASE s.scope
        WHEN 'nation' THEN 'nation'
        WHEN 'region' THEN s.region_id
        WHEN 'district' THEN s.district_id
        ELSE s.mahalla_id
    END AS scope_id,
    CASE s.scope
        WHEN 'nation' THEN 'All mahallas'
        WHEN 'unassigned' THEN 'Outside every mahalla'
        ELSE n.name
    END AS name,
    CASE WHEN s.scope IN ('district', 'mahalla') THEN s.region_id END AS region_id,
    CASE WHEN s.scope = 'mahalla' THEN s.district_id END AS district_id,
    s.mahallas,
    s.crime_free_mahallas,
    s.events,
    s.incidents,
    s.camera_alerts,
    s.fraud_flags,
    s.offences,
    s.cyber,
    CASE WHEN s.offences > 0 THEN CAST(s.cyber AS DOUBLE) / s.offences END AS cyber_share,
    s.harm,
    s.baseline7,
    2 * (sqrt(CAST(s.offences AS DOUBLE)) - sqrt(s.baseline7)) AS z7,
    s.baseline28,
    2 * (sqrt(CAST(s.offences AS DOUBLE)) - sqrt(s.baseline28)) AS z28,
    s.escalations_opened,
    s.escalations_closed
FROM scoped s
LEFT JOIN names n
    ON n.scope = s.scope
    AND n.scope_id = CASE s.scope
        WHEN 'region' THEN s.region_id
        WHEN 'district' THEN s.district_id
        ELSE s.mahalla_id
    END
ORDER BY
    CASE s.scope
        WHEN 'nation' THEN 0
        WHEN 'region' THEN 1
        WHEN 'district' THEN 2
        WHEN 'mahalla' THEN 3
        ELSE 4
    END,
    scope_id

-- The daily situation report: one row per scope for one local day, from the
-- per-mahalla figures in `mahalla_days` (see mahalla_day.sql), the change
-- scores (`scores`, the rows of scores.sql), the registry and the
-- escalations.
--
-- Scopes: the nation, each region, district and mahalla of the registry
-- (mahallas without events included: they are the crime-free ones), and
-- `unassigned` for events outside every mahalla (counted in the nation).
--
-- Parameters:
--   $day           DATE         the local (Asia/Tashkent) date
--   $day_start     TIMESTAMPTZ  its first instant
--   $day_end       TIMESTAMPTZ  the first instant of the next day
--
-- Difficult mahallas (difficult.sql, the table `difficult`):
-- difficult_mahallas counts the scope's mahallas difficult on $day,
-- newly_difficult those of them that were not the day before,
-- recovered_mahallas those difficult the day before and no longer.
--
-- Recurrence over the 14 days ending on $day (recurrence.sql, the table
-- `recurrence`, which says what each figure is): place_offences,
-- repeat_cells, repeat_offences, and per district, region and the nation
-- near_repeat_offences, near_repeat_share, near_repeat_pairs,
-- near_repeat_expected, near_repeat_ratio and near_repeat_excess.
--
-- The change of offences against the 7- and 28-day baselines (z7, z28) and
-- of camera alerts against 7 days (camera_alerts_z7) are scores.sql's: an
-- overdispersion-aware z score, withheld (NULL, "not enough history") with
-- fewer than 5 covered days of 7 or 21 of 28.
--
-- Crime-free streaks: a mahalla's crime_free_days are the days since its
-- last offence in the stored per-day figures (0 when it had one on $day);
-- one without an offence since the figures begin (records_since) has been
-- crime-free at least since then, and counts that many days.
-- crime_free_days_before is the same at the end of the day before, so a
-- mahalla that joined (or left) the mahallas crime-free for 30, 90 or 180
-- days shows as crossing the threshold. crime_free_30d, _90d and _180d
-- count the scope's mahallas crime-free for at least that long.
WITH
-- The figures of the day, per unit: a mahalla of the registry, or
-- `_unassigned` for events outside every mahalla (or in a mahalla the
-- registry no longer has).
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
        sum(d.harm) AS harm
    FROM mahalla_days d
    LEFT JOIN mahallas m ON m.mahalla_id = d.mahalla_id
    WHERE d.date = $day
    GROUP BY d.date, coalesce(m.mahalla_id, '_unassigned')
),
today AS (
    SELECT * FROM facts WHERE date = $day
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
areas AS (
    -- every mahalla of the registry, and the unassigned unit
    SELECT region_id, district_id, mahalla_id, 1 AS mahallas FROM mahallas
    UNION ALL
    SELECT CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), '_unassigned', 0
),
-- Crime-free streaks, from the stored per-day figures up to $day.
records AS (
    SELECT min(date) AS since FROM mahalla_days WHERE date <= $day
),
last_offences AS (
    SELECT
        mahalla_id,
        max(date) AS last_offence,
        max(CASE WHEN date < $day THEN date END) AS last_before
    FROM mahalla_days
    WHERE date <= $day AND offences > 0 AND mahalla_id IS NOT NULL
    GROUP BY mahalla_id
),
streaks AS (
    SELECT
        a.mahalla_id,
        l.last_offence,
        r.since AS records_since,
        CASE
            WHEN l.last_offence IS NOT NULL
                THEN CAST((date_part('epoch', CAST($day AS DATE)) - date_part('epoch', l.last_offence)) / 86400 AS BIGINT)
            ELSE CAST((date_part('epoch', CAST($day AS DATE)) - date_part('epoch', r.since)) / 86400 AS BIGINT) + 1
        END AS crime_free_days,
        CASE
            WHEN l.last_before IS NOT NULL
                THEN CAST((date_part('epoch', CAST($day AS DATE)) - date_part('epoch', l.last_before)) / 86400 AS BIGINT) - 1
            ELSE CAST((date_part('epoch', CAST($day AS DATE)) - date_part('epoch', r.since)) / 86400 AS BIGINT)
        END AS crime_free_days_before
    FROM mahallas a
    CROSS JOIN records r
    LEFT JOIN last_offences l ON l.mahalla_id = a.mahalla_id
),
units AS (
    SELECT
        a.region_id,
        a.district_id,
        a.mahalla_id,
        a.mahallas,
        CASE WHEN a.mahallas = 1 AND coalesce(t.offences, 0) = 0 THEN 1 ELSE 0 END AS crime_free,
        coalesce(t.events, 0) AS events,
        coalesce(t.incidents, 0) AS incidents,
        coalesce(t.camera_alerts, 0) AS camera_alerts,
        coalesce(t.fraud_flags, 0) AS fraud_flags,
        coalesce(t.offences, 0) AS offences,
        coalesce(t.cyber, 0) AS cyber,
        coalesce(t.harm, 0) AS harm,
        coalesce(o.n, 0) AS opened,
        coalesce(c.n, 0) AS closed,
        k.crime_free_days,
        k.crime_free_days_before,
        k.last_offence,
        k.records_since,
        CASE WHEN k.crime_free_days >= 30 THEN 1 ELSE 0 END AS free30,
        CASE WHEN k.crime_free_days >= 90 THEN 1 ELSE 0 END AS free90,
        CASE WHEN k.crime_free_days >= 180 THEN 1 ELSE 0 END AS free180,
        CASE WHEN h.status = 'difficult' THEN 1 ELSE 0 END AS difficult,
        CASE WHEN h.newly THEN 1 ELSE 0 END AS newly_difficult,
        CASE WHEN h.status = 'recovered' THEN 1 ELSE 0 END AS recovered
    FROM areas a
    LEFT JOIN today t ON t.mahalla_id = a.mahalla_id
    LEFT JOIN streaks k ON k.mahalla_id = a.mahalla_id
    LEFT JOIN opened o ON o.mahalla_id = a.mahalla_id AND a.mahallas = 1
    LEFT JOIN closed c ON c.mahalla_id = a.mahalla_id AND a.mahallas = 1
    LEFT JOIN difficult h ON h.scope_id = a.mahalla_id AND a.mahallas = 1
),
-- The change scores (scores.sql): offences (o_) and camera alerts (a_).
baselines AS (
    SELECT
        scope,
        scope_id,
        max(CASE WHEN measure = 'offences' THEN expected7 END) AS o_expected7,
        max(CASE WHEN measure = 'offences' THEN days7 END) AS o_days7,
        max(CASE WHEN measure = 'offences' THEN z7 END) AS o_z7,
        max(CASE WHEN measure = 'offences' THEN expected28 END) AS o_expected28,
        max(CASE WHEN measure = 'offences' THEN days28 END) AS o_days28,
        max(CASE WHEN measure = 'offences' THEN z28 END) AS o_z28,
        max(CASE WHEN measure = 'offences' THEN dispersion END) AS o_phi,
        max(CASE WHEN measure = 'camera_alerts' THEN expected7 END) AS a_expected7,
        max(CASE WHEN measure = 'camera_alerts' THEN z7 END) AS a_z7
    FROM scores
    WHERE measure IN ('offences', 'camera_alerts')
    GROUP BY scope, scope_id
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
        sum(opened) AS escalations_opened,
        sum(closed) AS escalations_closed,
        max(crime_free_days) AS crime_free_days,
        max(crime_free_days_before) AS crime_free_days_before,
        max(last_offence) AS last_offence,
        max(records_since) AS records_since,
        sum(free30) AS crime_free_30d,
        sum(free90) AS crime_free_90d,
        sum(free180) AS crime_free_180d,
        sum(difficult) AS difficult_mahallas,
        sum(newly_difficult) AS newly_difficult,
        sum(recovered) AS recovered_mahallas
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
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN region_id IS NULL THEN '_unassigned'
            WHEN g_district = 1 THEN region_id
            WHEN g_mahalla = 1 THEN district_id
            ELSE mahalla_id
        END AS scope_id,
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
    s.scope_id,
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
    b.o_expected7 AS baseline7,
    coalesce(b.o_days7, 0) AS baseline7_days,
    b.o_z7 AS z7,
    b.o_expected28 AS baseline28,
    coalesce(b.o_days28, 0) AS baseline28_days,
    b.o_z28 AS z28,
    b.o_phi AS dispersion,
    b.a_expected7 AS camera_alerts_baseline7,
    b.a_z7 AS camera_alerts_z7,
    s.escalations_opened,
    s.escalations_closed,
    CASE WHEN s.scope = 'mahalla' THEN s.crime_free_days END AS crime_free_days,
    CASE WHEN s.scope = 'mahalla' THEN s.crime_free_days_before END AS crime_free_days_before,
    CASE WHEN s.scope = 'mahalla' THEN s.last_offence END AS last_offence,
    CASE WHEN s.scope <> 'unassigned' THEN s.records_since END AS records_since,
    s.crime_free_30d,
    s.crime_free_90d,
    s.crime_free_180d,
    CASE WHEN s.scope <> 'unassigned' THEN s.difficult_mahallas END AS difficult_mahallas,
    CASE WHEN s.scope <> 'unassigned' THEN s.newly_difficult END AS newly_difficult,
    CASE WHEN s.scope <> 'unassigned' THEN s.recovered_mahallas END AS recovered_mahallas,
    CASE WHEN s.scope <> 'unassigned' THEN coalesce(r.place_offences, 0) END AS place_offences,
    CASE WHEN s.scope <> 'unassigned' THEN coalesce(r.repeat_cells, 0) END AS repeat_cells,
    CASE WHEN s.scope <> 'unassigned' THEN coalesce(r.repeat_offences, 0) END AS repeat_offences,
    r.near_repeat_offences,
    r.near_repeat_share,
    r.near_repeat_pairs,
    r.near_repeat_expected,
    r.near_repeat_ratio,
    r.near_repeat_excess
FROM scoped s
LEFT JOIN baselines b ON b.scope = s.scope AND b.scope_id = s.scope_id
LEFT JOIN recurrence r ON r.scope = s.scope AND r.scope_id = s.scope_id
LEFT JOIN names n
    ON n.scope = s.scope
    AND n.scope_id = s.scope_id
ORDER BY
    CASE s.scope
        WHEN 'nation' THEN 0
        WHEN 'region' THEN 1
        WHEN 'district' THEN 2
        WHEN 'mahalla' THEN 3
        ELSE 4
    END,
    s.scope_id

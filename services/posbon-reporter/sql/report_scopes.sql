-- The daily situation report: one row per scope for one local day, from the
-- per-mahalla figures in `mahalla_days` (see mahalla_day.sql), the counts
-- of the baseline's days (`baseline_days`, the rows of baseline_days.sql),
-- the registry and the escalations.
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
-- Change against a baseline: a z score that holds at every scale, from a
-- mahalla with one offence a week to the nation with thousands a day
-- (ARCHITECTURE.md, "The report's change score", says why each part is
-- there).
--
-- 1. Baseline days: the days of the 28 before $day on which the system was
--    receiving events (see baseline_days.sql). baseline7_days and
--    baseline28_days say how many of the 7 and 28 counted.
-- 2. Weekday. When every weekday has at least 3 covered days, each day's
--    count is divided by its weekday's factor (the nation's mean on that
--    weekday over the mean of the 7 weekday means, per measure) and the
--    expectation for $day is multiplied by $day's factor; otherwise every
--    factor is 1.
-- 3. Past outbreaks out: a first fit over all covered days gives each
--    scope's level; a day that stands out from it (standardised residual
--    above 2.58 against the median dispersion of its kind of scope) is left
--    out of the baseline, as in the Farrington algorithm of public-health
--    surveillance, so that last week's fraud wave does not hide this week's.
-- 4. Expected count: factor($day) * (sum of adjusted counts + 1/2) / days,
--    over the kept days of the 7 (baseline7) or 28 (baseline28) before
--    (when every day of the 7 was left out, the week has been one long
--    rise, and baseline7 is the kept 28 days' level). The 1/2 (Jeffreys' prior) keeps a mahalla without offences in its
--    baseline from being expected to have exactly none.
-- 5. Dispersion: daily counts of a district or a nation vary far more than
--    Poisson (weekdays, weather, reporting batches, repeat offences). phi is
--    the Pearson statistic of the scope's own kept days over the 28-day
--    window, sum((x - e)^2 / e) / (days - 1), shrunk towards the median phi
--    of its kind of scope (that median weighs as 10 days), and never below
--    1 (Poisson).
-- 6. z = 2 (sqrt(observed) - sqrt(expected)) / sqrt(phi (1 + 1/days + w)),
--    the variance-stabilised count (for a quasi-Poisson count, 2 sqrt(x) has
--    variance phi) with the uncertainty of the expectation (1/days) and of
--    the weekday factor (w = 1 / covered days of $day's weekday when
--    adjusted, else 0), days being the kept days. It is withheld (NULL,
--    "not enough history") with fewer than 5 covered days of 7 or 21 of 28.
--
-- Sums of a scope are taken before the z, so a district's z is the z of its
-- total, not an average of its mahallas'. The same score is given for
-- camera alerts against their 7-day baseline (a burst of detections, such as
-- a drug hand-off hotspot, is not an offence but is a change to report).
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
        coalesce(c.n, 0) AS closed
    FROM areas a
    LEFT JOIN today t ON t.mahalla_id = a.mahalla_id
    LEFT JOIN opened o ON o.mahalla_id = a.mahalla_id AND a.mahallas = 1
    LEFT JOIN closed c ON c.mahalla_id = a.mahalla_id AND a.mahallas = 1
),
-- The counts of the covered days (baseline_days.sql), per scope and
-- measure, adjusted for the weekday. DataFusion evaluates a CTE again at
-- each use, so the steps below take their sums in one pass each, and the
-- large table (per scope and day) is read a few times, not dozens.
-- 2. Weekday factors, from the nation's covered days.
weekdays AS (
    SELECT measure, weekday, count(*) AS n, avg(x) AS mean
    FROM baseline_days
    WHERE scope = 'nation'
    GROUP BY measure, weekday
),
weekday_fit AS (
    SELECT
        measure,
        CASE WHEN count(*) = 7 AND min(n) >= 3 AND min(mean) > 0 THEN 1 ELSE 0 END AS adjusted,
        avg(mean) AS mean
    FROM weekdays
    GROUP BY measure
),
factors AS (
    SELECT
        w.measure,
        w.weekday,
        w.n,
        f.adjusted,
        CASE WHEN f.adjusted = 1 THEN w.mean / f.mean ELSE 1.0 END AS factor
    FROM weekdays w
    JOIN weekday_fit f ON f.measure = w.measure
),
-- 3. First fit: each scope's level over all its covered days (and how many
--    of the 7 and 28 days had data), and the median dispersion of each kind
--    of scope. The Pearson sum is taken in one pass, expanded:
--    sum((x - f m)^2 / (f m)) = sum(x^2 / f) / m - 2 sum(x) + m sum(f),
--    with m the level (the mean of x / f).
adjusted_days AS (
    SELECT d.scope, d.scope_id, d.measure, d.in7, d.x, f.factor, d.x / f.factor AS a
    FROM baseline_days d
    JOIN factors f ON f.measure = d.measure AND f.weekday = d.weekday
),
first_sums AS (
    SELECT
        scope,
        scope_id,
        measure,
        count(*) AS n,
        sum(in7) AS days7,
        sum(a) AS total,
        sum(x) AS sum_x,
        sum(x * x / factor) AS sum_x2f,
        sum(factor) AS sum_f
    FROM adjusted_days
    GROUP BY scope, scope_id, measure
),
first_scopes AS (
    SELECT
        *,
        CASE WHEN n >= 2 AND total > 0 THEN
            (sum_x2f / (total / n) - 2 * sum_x + (total / n) * sum_f) / (n - 1)
        END AS phi_raw
    FROM first_sums
),
first_pools AS (
    SELECT
        s.scope,
        s.scope_id,
        s.measure,
        s.n,
        s.total,
        s.days7,
        s.n AS days28,
        greatest(1.0, coalesce(k.phi, 1.0)) AS phi
    FROM first_scopes s
    LEFT JOIN (
        SELECT scope, measure, median(phi_raw) AS phi
        FROM first_scopes
        GROUP BY scope, measure
    ) k ON k.scope = s.scope AND k.measure = s.measure
),
-- 4. Past outbreaks out of the baseline: a day whose count stands out from
--    the first fit, 2 (sqrt(x) - sqrt(e)) / sqrt(phi of its kind of scope)
--    above 2.58, is left out, as the Farrington algorithm of public-health
--    surveillance does, so that last week's fraud wave does not hide this
--    week's. The kind's phi, not the scope's own, judges: a scope's own
--    outbreaks would inflate its own.
kept_days AS (
    SELECT d.*, p.days7, p.days28
    FROM adjusted_days d
    JOIN first_pools p ON p.scope = d.scope AND p.scope_id = d.scope_id AND p.measure = d.measure
    WHERE p.total = 0
        OR 2 * (sqrt(d.x) - sqrt(d.factor * p.total / p.n)) <= 2.58 * sqrt(p.phi)
),
-- 5. Levels and dispersion over the kept days.
kept_sums AS (
    SELECT
        scope,
        scope_id,
        measure,
        max(days7) AS days7,
        max(days28) AS days28,
        count(*) AS n28,
        sum(a) AS sum28,
        sum(in7) AS n7,
        sum(CASE WHEN in7 = 1 THEN a ELSE 0 END) AS sum7,
        sum(x) AS sum_x,
        sum(x * x / factor) AS sum_x2f,
        sum(factor) AS sum_f
    FROM kept_days
    GROUP BY scope, scope_id, measure
),
levels AS (
    SELECT
        scope,
        scope_id,
        measure,
        days7,
        days28,
        n28,
        sum28,
        n7,
        sum7,
        CASE WHEN n28 >= 2 AND sum28 > 0 THEN
            (sum_x2f / (sum28 / n28) - 2 * sum_x + (sum28 / n28) * sum_f) / (n28 - 1)
        END AS phi_raw
    FROM kept_sums
),
dispersion AS (
    SELECT
        l.*,
        CASE
            WHEN l.phi_raw IS NULL THEN greatest(1.0, coalesce(k.phi_pool, 1.0))
            ELSE greatest(
                1.0,
                ((l.n28 - 1) * l.phi_raw + 10 * coalesce(k.phi_pool, 1.0)) / ((l.n28 - 1) + 10)
            )
        END AS phi
    FROM levels l
    LEFT JOIN (
        SELECT scope, measure, median(phi_raw) AS phi_pool
        FROM levels
        GROUP BY scope, measure
    ) k ON k.scope = l.scope AND k.measure = l.measure
),
-- $day's weekday factor.
day_factor AS (
    SELECT measure, factor, adjusted, n
    FROM factors
    WHERE weekday = date_part('dow', CAST($day AS DATE))
),
measured_baselines AS (
    SELECT
        d.scope,
        d.scope_id,
        d.measure,
        d.days7,
        d.days28,
        -- every day of the 7 left out as an outbreak (the week has been one
        -- long rise): the 7-day expectation is the kept 28-day level
        CASE WHEN d.n7 > 0 THEN d.n7 ELSE d.n28 END AS n7,
        d.n28,
        d.phi,
        CASE WHEN coalesce(f.adjusted, 0) = 1 THEN 1.0 / f.n ELSE 0.0 END AS w,
        CASE
            WHEN d.n7 > 0 THEN coalesce(f.factor, 1.0) * (d.sum7 + 0.5) / d.n7
            WHEN d.n28 > 0 THEN coalesce(f.factor, 1.0) * (d.sum28 + 0.5) / d.n28
        END AS expected7,
        CASE WHEN d.n28 > 0 THEN coalesce(f.factor, 1.0) * (d.sum28 + 0.5) / d.n28 END AS expected28
    FROM dispersion d
    LEFT JOIN day_factor f ON f.measure = d.measure
),
-- One row per scope: offences (o_) and camera alerts (a_).
baselines AS (
    SELECT
        scope,
        scope_id,
        max(CASE WHEN measure = 'offences' THEN days7 END) AS o_days7,
        max(CASE WHEN measure = 'offences' THEN days28 END) AS o_days28,
        max(CASE WHEN measure = 'offences' THEN n7 END) AS o_n7,
        max(CASE WHEN measure = 'offences' THEN n28 END) AS o_n28,
        max(CASE WHEN measure = 'offences' THEN phi END) AS o_phi,
        max(CASE WHEN measure = 'offences' THEN w END) AS o_w,
        max(CASE WHEN measure = 'offences' THEN expected7 END) AS o_expected7,
        max(CASE WHEN measure = 'offences' THEN expected28 END) AS o_expected28,
        max(CASE WHEN measure = 'camera_alerts' THEN days7 END) AS a_days7,
        max(CASE WHEN measure = 'camera_alerts' THEN n7 END) AS a_n7,
        max(CASE WHEN measure = 'camera_alerts' THEN phi END) AS a_phi,
        max(CASE WHEN measure = 'camera_alerts' THEN w END) AS a_w,
        max(CASE WHEN measure = 'camera_alerts' THEN expected7 END) AS a_expected7
    FROM measured_baselines
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
    CASE WHEN b.o_days7 >= 5 THEN
        2 * (sqrt(CAST(s.offences AS DOUBLE)) - sqrt(b.o_expected7))
            / sqrt(b.o_phi * (1 + 1.0 / b.o_n7 + b.o_w))
    END AS z7,
    b.o_expected28 AS baseline28,
    coalesce(b.o_days28, 0) AS baseline28_days,
    CASE WHEN b.o_days28 >= 21 THEN
        2 * (sqrt(CAST(s.offences AS DOUBLE)) - sqrt(b.o_expected28))
            / sqrt(b.o_phi * (1 + 1.0 / b.o_n28 + b.o_w))
    END AS z28,
    b.o_phi AS dispersion,
    b.a_expected7 AS camera_alerts_baseline7,
    CASE WHEN b.a_days7 >= 5 THEN
        2 * (sqrt(CAST(s.camera_alerts AS DOUBLE)) - sqrt(b.a_expected7))
            / sqrt(b.a_phi * (1 + 1.0 / b.a_n7 + b.a_w))
    END AS camera_alerts_z7,
    s.escalations_opened,
    s.escalations_closed
FROM scoped s
LEFT JOIN baselines b ON b.scope = s.scope AND b.scope_id = s.scope_id
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

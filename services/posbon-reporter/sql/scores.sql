-- The change scores of one local day: for each scope (the nation, each
-- region, district and mahalla of the registry, and `unassigned`) and each
-- measure of baseline_days.sql (offences, camera alerts and the focus
-- groups), the day's count, what the 7 and 28 days before lead one to
-- expect, and how far the count is from it as a z score. report_scopes.sql
-- and report_focus_groups.sql read these rows as the table `scores`; to run
-- it by hand, put baseline_days.sql in as a CTE of that name.
--
-- Parameters:
--   $day           DATE         the local (Asia/Tashkent) date
--
-- A z score that holds at every scale, from a mahalla with one offence a
-- week to the nation with thousands a day (ARCHITECTURE.md, "The report's
-- change score", says why each part is there):
--
-- 1. Baseline days: the days of the 28 before $day on which the system was
--    receiving events (`base = 1` in baseline_days). days7 and days28 say
--    how many of the 7 and 28 counted.
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
--    over the kept days of the 7 (expected7) or 28 (expected28) before
--    (when every day of the 7 was left out, the week has been one long
--    rise, and expected7 is the kept 28 days' level). The 1/2 (Jeffreys'
--    prior) keeps a mahalla without offences in its baseline from being
--    expected to have exactly none.
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
-- Sums of a scope are taken before the z (baseline_days sums them), so a
-- district's z is the z of its total, not an average of its mahallas'.
--
-- DataFusion evaluates a CTE again at each use, so the steps below take
-- their sums in one pass each, and the large table (per scope and day) is
-- read a few times, not dozens.
WITH
history AS (
    SELECT * FROM baseline_days WHERE base = 1
),
-- 2. Weekday factors, from the nation's covered days.
weekdays AS (
    SELECT measure, weekday, count(*) AS n, avg(x) AS mean
    FROM history
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
    FROM history d
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
        scope,
        scope_id,
        measure,
        n,
        total,
        days7,
        n AS days28,
        greatest(
            1.0,
            coalesce(median(phi_raw) OVER (PARTITION BY scope, measure), 1.0)
        ) AS phi
    FROM first_scopes
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
-- The median of its kind of scope as a window, not a join: DataFusion
-- would compute `levels` (and every step before it) again for a join.
pooled AS (
    SELECT *, median(phi_raw) OVER (PARTITION BY scope, measure) AS phi_pool
    FROM levels
),
dispersion AS (
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
        CASE
            WHEN phi_raw IS NULL THEN greatest(1.0, coalesce(phi_pool, 1.0))
            ELSE greatest(
                1.0,
                ((n28 - 1) * phi_raw + 10 * coalesce(phi_pool, 1.0)) / ((n28 - 1) + 10)
            )
        END AS phi
    FROM pooled
),
-- $day's weekday factor.
day_factor AS (
    SELECT measure, factor, adjusted, n
    FROM factors
    WHERE weekday = date_part('dow', CAST($day AS DATE))
),
expected AS (
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
-- 6. The day's count against the expectations.
today AS (
    SELECT scope, scope_id, measure, x
    FROM baseline_days
    WHERE base = 0
)
SELECT
    t.scope,
    t.scope_id,
    t.measure,
    CAST(t.x AS BIGINT) AS observed,
    e.expected7,
    coalesce(e.days7, 0) AS days7,
    CASE WHEN e.days7 >= 5 THEN
        2 * (sqrt(t.x) - sqrt(e.expected7)) / sqrt(e.phi * (1 + 1.0 / e.n7 + e.w))
    END AS z7,
    e.expected28,
    coalesce(e.days28, 0) AS days28,
    CASE WHEN e.days28 >= 21 THEN
        2 * (sqrt(t.x) - sqrt(e.expected28)) / sqrt(e.phi * (1 + 1.0 / e.n28 + e.w))
    END AS z28,
    e.phi AS dispersion
FROM today t
LEFT JOIN expected e ON e.scope = t.scope AND e.scope_id = t.scope_id AND e.measure = t.measure
ORDER BY t.scope, t.scope_id, t.measure

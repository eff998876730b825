-- Recurrence per scope over the last 14 local days: repeat locations and
-- near repeats of place-based offences (`recent_offences`, the rows of
-- recent_offences.sql). Held as the table `recurrence` that
-- report_scopes.sql reads; not stored.
--
-- No parameters: it reads only `recent_offences`.
--
-- Repeat locations: a cell (the storage resolution, 10 by default: about
-- 66 m across) with two or more offences of one category in one mahalla
-- within the 14 days. `repeat_cells` counts them, `repeat_offences` counts
-- the offences in them. Domestic violence is left out of them: a cell of
-- 66 m with two domestic cases is a household (the count of a mahalla
-- beside its listed cells would tell how many). It counts in the near
-- repeats of its district.
--
-- Near repeats (per district, and summed over the districts of a region
-- and of the nation; none for a mahalla, too small to compare). As in the
-- near-repeat literature, an offence repeats offences of its own category:
--   - a close pair is two offences of the district and of one category
--     whose cells are the same or neighbours (one H3 ring, within about
--     200 m) and whose times are at most 7 days apart;
--   - near_repeat_offences: offences with an earlier offence of their
--     category close to them (near_repeat_share: their share of the
--     place-based offences);
--   - near_repeat_pairs: the close pairs observed;
--   - near_repeat_expected: the close pairs a time-shuffled history gives
--     on average. Shuffling the times among a district's offences of one
--     category keeps where they happened and when, but breaks the link
--     between the two; over all shuffles, a pair close in space is close
--     in time with the chance that two times drawn without replacement
--     are, so the expected count is exactly S * T / P, summed over the
--     categories: the pairs close in space (S), the pairs close in time (T)
--     and all pairs (P) of the category (the Knox test, stratified by
--     category);
--   - near_repeat_ratio = near_repeat_pairs / near_repeat_expected: 1 when
--     offences do not follow each other near by, above 1 when they do;
--   - near_repeat_excess = (near_repeat_pairs - near_repeat_expected) /
--     place_offences: the close pairs beyond chance per offence. Where
--     offences are dense (a hot spot has many offences of a kind every
--     week), chance alone gives many close pairs and the ratio stays near
--     1 even when offences do follow each other; the excess per offence
--     still shows it.
--   Sums of a region or the nation are the sums of their districts' pairs
--   and expectations.
WITH
-- Repeat locations.
repeats AS (
    SELECT region_id, district_id, mahalla_id, cell, category, count(*) AS offences
    FROM recent_offences
    WHERE category <> 'domestic_violence'
    GROUP BY region_id, district_id, mahalla_id, cell, category
    HAVING count(*) >= 2
),
repeat_units AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        count(*) AS repeat_cells,
        sum(offences) AS repeat_offences
    FROM repeats
    GROUP BY region_id, district_id, mahalla_id
),
offence_units AS (
    SELECT region_id, district_id, mahalla_id, count(*) AS place_offences
    FROM recent_offences
    GROUP BY region_id, district_id, mahalla_id
),
-- The strata near repeats are counted in: a district and a category.
strata AS (
    SELECT stratum, district_id, count(*) AS n
    FROM recent_offences
    GROUP BY stratum, district_id
),
-- Close pairs, counted without pairing offences one by one (a cell with
-- thousands of offences would make that quadratic): each offence stands
-- as a mark (probe = 1) in its own cell and in each neighbour, and is
-- looked for (probe = 0) in its own cell. The marks within 7 days before
-- an offence's time in its cell, itself and any at the same instant
-- included (the window), are the offences close to it from before; those
-- at the same instant (same_instant) are counted from both sides, so their
-- pairs are taken off once. An offence follows an earlier one when a mark
-- is strictly earlier, or at the same instant and earlier in `seq`.
marks AS (
    SELECT stratum, near AS cell, t, seq, 1 AS probe
    FROM (
        SELECT stratum, t, seq, unnest(h3_grid_disk(cell, 1)) AS near
        FROM recent_offences
    ) r
    UNION ALL
    SELECT stratum, cell, t, seq, 0 AS probe
    FROM recent_offences
),
looked AS (
    SELECT
        stratum,
        cell,
        t,
        seq,
        probe,
        sum(probe) OVER (
            PARTITION BY stratum, cell
            ORDER BY t
            RANGE BETWEEN 604800.0 PRECEDING AND CURRENT ROW
        ) - 1 AS close_before
    FROM marks
),
-- Per cell and instant: the marks there besides the offence's own, and
-- the first of them (grouped, not windowed: most instants hold one
-- offence).
instants AS (
    SELECT
        stratum,
        cell,
        t,
        sum(probe) - 1 AS same_instant,
        min(CASE WHEN probe = 1 THEN seq END) AS first_seq
    FROM marks
    GROUP BY stratum, cell, t
),
observed AS (
    SELECT
        l.stratum,
        sum(l.close_before) - sum(i.same_instant) / 2 AS pairs,
        sum(CASE
            WHEN l.close_before > i.same_instant OR (i.same_instant > 0 AND i.first_seq < l.seq)
                THEN 1
            ELSE 0
        END) AS followers
    FROM looked l
    JOIN instants i ON i.stratum = l.stratum AND i.cell = l.cell AND i.t = l.t
    WHERE l.probe = 0
    GROUP BY l.stratum
),
-- S: pairs close in space, per stratum. Per cell n offences; summed over
-- each cell and each cell of its ring, n * n' counts every close pair
-- twice and every offence with itself once.
cells AS (
    SELECT stratum, cell, count(*) AS n
    FROM recent_offences
    GROUP BY stratum, cell
),
cell_rings AS (
    SELECT stratum, n, unnest(h3_grid_disk(cell, 1)) AS near
    FROM cells
),
space AS (
    SELECT r.stratum, sum(r.n * c.n) AS ordered
    FROM cell_rings r
    JOIN cells c ON c.stratum = r.stratum AND c.cell = r.near
    GROUP BY r.stratum
),
-- T: pairs close in time, per stratum. For each offence, those of its
-- stratum from its time to 7 days later (itself and any at the same
-- instant included); offences at the same instant are counted from both
-- sides, so their pairs are taken off once.
ahead AS (
    SELECT
        stratum,
        count(*) OVER (
            PARTITION BY stratum
            ORDER BY t
            RANGE BETWEEN CURRENT ROW AND 604800.0 FOLLOWING
        ) - 1 AS later
    FROM recent_offences
),
same_instant AS (
    SELECT stratum, sum(n * (n - 1) / 2) AS pairs
    FROM (
        SELECT stratum, t, count(*) AS n
        FROM recent_offences
        GROUP BY stratum, t
    ) g
    GROUP BY stratum
),
time_close AS (
    SELECT stratum, sum(later) AS ahead
    FROM ahead
    GROUP BY stratum
),
near_repeats AS (
    -- per district: the observed pairs and offences, and S * T / P per
    -- stratum (P = n (n - 1) / 2) summed
    SELECT
        d.district_id,
        sum(coalesce(o.pairs, 0)) AS near_repeat_pairs,
        sum(coalesce(o.followers, 0)) AS near_repeat_offences,
        sum(CASE WHEN d.n >= 2 THEN
            CAST((s.ordered - d.n) / 2 AS DOUBLE)
            * CAST(m.ahead - coalesce(i.pairs, 0) AS DOUBLE)
            / (CAST(d.n AS DOUBLE) * CAST(d.n - 1 AS DOUBLE) / 2.0)
            ELSE 0.0
        END) AS near_repeat_expected
    FROM strata d
    JOIN space s ON s.stratum = d.stratum
    JOIN time_close m ON m.stratum = d.stratum
    LEFT JOIN same_instant i ON i.stratum = d.stratum
    LEFT JOIN observed o ON o.stratum = d.stratum
    GROUP BY d.district_id
),
units AS (
    SELECT
        u.region_id,
        u.district_id,
        u.mahalla_id,
        u.place_offences,
        coalesce(r.repeat_cells, 0) AS repeat_cells,
        coalesce(r.repeat_offences, 0) AS repeat_offences
    FROM offence_units u
    LEFT JOIN repeat_units r
        ON r.mahalla_id = u.mahalla_id
        AND r.district_id = u.district_id
        AND r.region_id = u.region_id
),
rolled AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        grouping(region_id) AS g_region,
        grouping(district_id) AS g_district,
        grouping(mahalla_id) AS g_mahalla,
        sum(place_offences) AS place_offences,
        sum(repeat_cells) AS repeat_cells,
        sum(repeat_offences) AS repeat_offences
    FROM units
    GROUP BY ROLLUP (region_id, district_id, mahalla_id)
),
district_regions AS (
    SELECT DISTINCT region_id, district_id FROM recent_offences
),
near_rolled AS (
    SELECT
        dr.region_id,
        n.district_id,
        grouping(dr.region_id) AS g_region,
        grouping(n.district_id) AS g_district,
        sum(n.near_repeat_pairs) AS near_repeat_pairs,
        sum(n.near_repeat_offences) AS near_repeat_offences,
        sum(n.near_repeat_expected) AS near_repeat_expected
    FROM near_repeats n
    JOIN district_regions dr ON dr.district_id = n.district_id
    GROUP BY ROLLUP (dr.region_id, n.district_id)
),
near_scoped AS (
    SELECT
        CASE WHEN g_region = 1 THEN 'nation' WHEN g_district = 1 THEN 'region' ELSE 'district' END AS scope,
        CASE WHEN g_region = 1 THEN 'nation' WHEN g_district = 1 THEN region_id ELSE district_id END AS scope_id,
        near_repeat_pairs,
        near_repeat_offences,
        near_repeat_expected
    FROM near_rolled
)
SELECT
    s.scope,
    s.scope_id,
    s.place_offences,
    s.repeat_cells,
    s.repeat_offences,
    n.near_repeat_offences,
    CASE WHEN s.place_offences > 0 AND n.near_repeat_offences IS NOT NULL
        THEN CAST(n.near_repeat_offences AS DOUBLE) / s.place_offences END AS near_repeat_share,
    n.near_repeat_pairs,
    n.near_repeat_expected,
    CASE WHEN n.near_repeat_expected > 0
        THEN n.near_repeat_pairs / n.near_repeat_expected END AS near_repeat_ratio,
    CASE WHEN s.place_offences > 0 AND n.near_repeat_expected IS NOT NULL
        THEN (n.near_repeat_pairs - n.near_repeat_expected) / s.place_offences END AS near_repeat_excess
FROM (
    SELECT
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN g_district = 1 THEN 'region'
            WHEN g_mahalla = 1 THEN 'district'
            ELSE 'mahalla'
        END AS scope,
        CASE
            WHEN g_region = 1 THEN 'nation'
            WHEN g_district = 1 THEN region_id
            WHEN g_mahalla = 1 THEN district_id
            ELSE mahalla_id
        END AS scope_id,
        place_offences,
        repeat_cells,
        repeat_offences
    FROM rolled
) s
LEFT JOIN near_scoped n ON n.scope = s.scope AND n.scope_id = s.scope_id
ORDER BY s.scope, s.scope_id

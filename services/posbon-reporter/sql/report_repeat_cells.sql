-- The top repeat locations per scope over the last 14 local days: a cell
-- (storage resolution, 10 by default) with two or more place-based
-- offences of one category in one mahalla (`recent_offences`, the rows of
-- recent_offences.sql; recurrence.sql counts them per scope). Ranked by
-- offences, then the latest of them, then cell, category and mahalla: the top 10 of
-- the nation or a region, the top 5 of a district, the top 3 of a mahalla.
-- Stored as `daily_report_repeat_cells`.
--
-- Domestic violence is never a repeat location (recurrence.sql says why).
--
-- Parameters:
--   $day  DATE  the local (Asia/Tashkent) date
WITH repeats AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        cell,
        category,
        count(*) AS offences,
        min(occurred_at) AS first_offence,
        max(occurred_at) AS last_offence
    FROM recent_offences
    WHERE category <> 'domestic_violence'
    GROUP BY region_id, district_id, mahalla_id, cell, category
    HAVING count(*) >= 2
),
scoped AS (
    SELECT 'nation' AS scope, 'nation' AS scope_id, mahalla_id, cell, category, offences, first_offence, last_offence
    FROM repeats
    UNION ALL
    SELECT 'region', region_id, mahalla_id, cell, category, offences, first_offence, last_offence
    FROM repeats
    UNION ALL
    SELECT 'district', district_id, mahalla_id, cell, category, offences, first_offence, last_offence
    FROM repeats
    UNION ALL
    SELECT 'mahalla', mahalla_id AS id, mahalla_id, cell, category, offences, first_offence, last_offence
    FROM repeats
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY scope, scope_id
            ORDER BY offences DESC, last_offence DESC, cell, category, mahalla_id
        ) AS rank
    FROM scoped
)
SELECT
    CAST($day AS DATE) AS date,
    scope,
    scope_id,
    rank,
    cell,
    category,
    mahalla_id,
    offences,
    first_offence,
    last_offence
FROM ranked
WHERE rank <= CASE scope WHEN 'mahalla' THEN 3 WHEN 'district' THEN 5 ELSE 10 END
ORDER BY
    CASE scope
        WHEN 'nation' THEN 0
        WHEN 'region' THEN 1
        WHEN 'district' THEN 2
        ELSE 3
    END,
    scope_id,
    rank

-- Events and harm of one local day per scope, kind and category (for an
-- incident its category, for a camera alert its detection, for a fraud flag
-- its scheme).
--
-- Parameters:
--   $day        DATE         the local (Asia/Tashkent) date
--   $day_start  TIMESTAMPTZ  its first instant
--   $day_end    TIMESTAMPTZ  the first instant of the next day
--
-- Scopes as in report_scopes.sql (nation, region, district, mahalla, and
-- `unassigned` for events outside every mahalla). Harm points are the same
-- as in mahalla_day.sql (the expression between the `harm` markers is the
-- same in every file; a test checks it).
WITH scored AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        kind,
        category,
        -- harm: begin
        CASE kind
            -- incidents: severity (1..5) times the weight of the category
            WHEN 'incident' THEN CAST(severity AS BIGINT) * CASE category
                WHEN 'homicide' THEN 10
                WHEN 'robbery' THEN 5
                WHEN 'drug_trafficking' THEN 5
                WHEN 'assault' THEN 4
                WHEN 'weapons' THEN 4
                WHEN 'domestic_violence' THEN 4
                WHEN 'theft' THEN 2
                WHEN 'fraud' THEN 2
                WHEN 'cybercrime' THEN 2
                ELSE 1
            END
            -- camera alerts: the weight of the detection times the model's
            -- confidence (0..1), rounded
            WHEN 'camera_alert' THEN CAST(round(confidence * CASE category
                WHEN 'weapon' THEN 6
                WHEN 'drug_handoff' THEN 4
                WHEN 'fight' THEN 4
                WHEN 'intrusion' THEN 2
                WHEN 'plate_match' THEN 2
                ELSE 1
            END) AS BIGINT)
            -- fraud flags: the weight of the scheme times a step of the amount
            -- (below 1M, 10M, 100M soum, or more)
            WHEN 'fraud_flag' THEN CASE category
                WHEN 'account_takeover' THEN 3
                WHEN 'investment_scam' THEN 3
                WHEN 'card_fraud' THEN 2
                WHEN 'phishing' THEN 2
                WHEN 'scam_call' THEN 2
                ELSE 1
            END * CASE
                WHEN amount_uzs < 1000000 THEN 1
                WHEN amount_uzs < 10000000 THEN 2
                WHEN amount_uzs < 100000000 THEN 3
                ELSE 4
            END
            ELSE 0
        END
        -- harm: end
        AS harm
    FROM events
    WHERE occurred_at >= $day_start AND occurred_at < $day_end
),
-- The finest groups first (one row per mahalla, kind and category), so
-- the grouping sets below roll up those rows rather than every event.
finest AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        kind,
        category,
        count(*) AS events,
        sum(harm) AS harm
    FROM scored
    GROUP BY region_id, district_id, mahalla_id, kind, category
),
grouped AS (
    SELECT
        region_id,
        district_id,
        mahalla_id,
        kind,
        category,
        grouping(region_id) AS g_region,
        grouping(district_id) AS g_district,
        grouping(mahalla_id) AS g_mahalla,
        sum(events) AS events,
        sum(harm) AS harm
    FROM finest
    GROUP BY GROUPING SETS (
        (kind, category),
        (region_id, kind, category),
        (region_id, district_id, kind, category),
        (region_id, district_id, mahalla_id, kind, category)
    )
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
    FROM grouped
    WHERE g_region = 1 OR region_id IS NOT NULL OR g_mahalla = 0
)
SELECT
    CAST($day AS DATE) AS date,
    scope,
    CASE scope
        WHEN 'nation' THEN 'nation'
        WHEN 'region' THEN region_id
        WHEN 'district' THEN district_id
        WHEN 'mahalla' THEN mahalla_id
        ELSE '_unassigned'
    END AS scope_id,
    CAST(kind AS VARCHAR) AS kind,
    CAST(category AS VARCHAR) AS category,
    events,
    harm
FROM scoped
ORDER BY
    CASE scope
        WHEN 'nation' THEN 0
        WHEN 'region' THEN 1
        WHEN 'district' THEN 2
        WHEN 'mahalla' THEN 3
        ELSE 4
    END,
    scope_id,
    kind,
    category

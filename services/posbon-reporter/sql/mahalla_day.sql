-- Per mahalla, the events of one local day: the figures the daily report
-- stores in `mahalla_days` and computes its baselines from.
--
-- Parameters (bind them, or replace them by literals to run this by hand):
--   $day        DATE         the local (Asia/Tashkent) date, e.g. DATE '2026-05-01'
--   $day_start  TIMESTAMPTZ  its first instant, e.g. TIMESTAMPTZ '2026-05-01 00:00:00+05:00'
--   $day_end    TIMESTAMPTZ  the first instant of the next day
--
-- Offences are incidents and fraud flags (camera alerts are detections, not
-- offences). Cybercrime is every fraud flag plus incidents of category
-- `fraud` or `cybercrime`. Harm is in whole points per event (see below), so
-- sums are exact and a rerun gives the same figures. Events outside every
-- mahalla come out as one row with a NULL mahalla_id.
--
-- The focus groups of prevention (report_focus_groups.sql says what each
-- is) are counted from the incidents' victim and offender flags. They are
-- sensitive: a caller without sensitive access reads them as NULL.
WITH counted AS (
    SELECT
        mahalla_id,
        district_id,
        region_id,
        count(*) AS events,
        sum(CASE WHEN kind = 'incident' THEN 1 ELSE 0 END) AS incidents,
        sum(CASE WHEN kind = 'camera_alert' THEN 1 ELSE 0 END) AS camera_alerts,
        sum(CASE WHEN kind = 'fraud_flag' THEN 1 ELSE 0 END) AS fraud_flags,
        sum(CASE WHEN kind IN ('incident', 'fraud_flag') THEN 1 ELSE 0 END) AS offences,
        sum(CASE
                WHEN kind = 'fraud_flag' THEN 1
                WHEN kind = 'incident' AND category IN ('fraud', 'cybercrime') THEN 1
                ELSE 0
            END) AS cyber,
        sum(
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
        ) AS harm
    FROM events
    WHERE occurred_at >= $day_start AND occurred_at < $day_end
    GROUP BY mahalla_id, district_id, region_id
),
focus AS (
    SELECT
        mahalla_id,
        sum(CASE WHEN victim_minor THEN 1 ELSE 0 END) AS victim_minor,
        sum(CASE WHEN victim_youth THEN 1 ELSE 0 END) AS victim_youth,
        sum(CASE WHEN victim_woman THEN 1 ELSE 0 END) AS victim_woman,
        sum(CASE WHEN offender_minor THEN 1 ELSE 0 END) AS offender_minor,
        sum(CASE WHEN offender_youth THEN 1 ELSE 0 END) AS offender_youth,
        sum(CASE WHEN domestic THEN 1 ELSE 0 END) AS domestic,
        sum(CASE
                WHEN category IN ('drug_trafficking', 'drug_use')
                    AND (offender_minor OR offender_youth) THEN 1
                ELSE 0
            END) AS offender_youth_drugs
    FROM incidents
    WHERE occurred_at >= $day_start AND occurred_at < $day_end
    GROUP BY mahalla_id
)
SELECT
    CAST($day AS DATE) AS date,
    c.mahalla_id,
    c.district_id,
    c.region_id,
    c.events,
    c.incidents,
    c.camera_alerts,
    c.fraud_flags,
    c.offences,
    c.cyber,
    c.harm,
    coalesce(f.victim_minor, 0) AS victim_minor,
    coalesce(f.victim_youth, 0) AS victim_youth,
    coalesce(f.victim_woman, 0) AS victim_woman,
    coalesce(f.offender_minor, 0) AS offender_minor,
    coalesce(f.offender_youth, 0) AS offender_youth,
    coalesce(f.domestic, 0) AS domestic,
    coalesce(f.offender_youth_drugs, 0) AS offender_youth_drugs
FROM counted c
LEFT JOIN focus f ON f.mahalla_id IS NOT DISTINCT FROM c.mahalla_id
ORDER BY c.mahalla_id NULLS LAST

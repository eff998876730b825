-- Share of cybercrime (fraud flags and cyber incidents) among offences per district.
SELECT
    district_id,
    sum(CASE WHEN kind IN ('incident', 'fraud_flag') THEN 1 ELSE 0 END) AS offences,
    round(
        CAST(sum(CASE
            WHEN kind = 'fraud_flag' THEN 1
            WHEN kind = 'incident' AND category IN ('fraud', 'cybercrime') THEN 1
            ELSE 0
        END) AS DOUBLE) / sum(CASE WHEN kind IN ('incident', 'fraud_flag') THEN 1 ELSE 0 END),
        3
    ) AS cyber_share
FROM events
WHERE district_id IS NOT NULL
GROUP BY district_id
ORDER BY district_id

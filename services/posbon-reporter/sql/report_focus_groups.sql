-- The focus groups of crime prevention, per scope for one local day: offences
-- against minors, youth and women, by minors and youth, in family and
-- domestic relations, and drug offences with a young offender, each with its
-- change against the 7- and 28-day baselines (the rows of scores.sql, read
-- as the table `scores`; see there for the z score).
--
-- Parameters:
--   $day           DATE         the local (Asia/Tashkent) date
--
-- The groups (incident flags, set by the reporting unit; an incident can be
-- in several):
--   victim_minor          a victim under 18
--   victim_youth          a victim aged 18 to 30
--   victim_woman          a woman victim
--   offender_minor        an offender under 18
--   offender_youth        an offender aged 18 to 30
--   domestic              family and domestic relations
--   offender_youth_drugs  drug trafficking or drug use with an offender under 30
--
-- These counts identify people in a small area: a caller without sensitive
-- access reads a mahalla's count below the configured minimum as "<3" in
-- the report, and none of this table's figures over SQL.
SELECT
    CAST($day AS DATE) AS date,
    scope,
    scope_id,
    measure AS focus_group,
    observed AS offences,
    expected7 AS baseline7,
    days7 AS baseline7_days,
    z7,
    expected28 AS baseline28,
    days28 AS baseline28_days,
    z28
FROM scores
WHERE measure IN (
    'victim_minor',
    'victim_youth',
    'victim_woman',
    'offender_minor',
    'offender_youth',
    'domestic',
    'offender_youth_drugs'
)
ORDER BY
    CASE scope
        WHEN 'nation' THEN 0
        WHEN 'region' THEN 1
        WHEN 'district' THEN 2
        WHEN 'mahalla' THEN 3
        ELSE 4
    END,
    scope_id,
    CASE measure
        WHEN 'victim_minor' THEN 0
        WHEN 'victim_youth' THEN 1
        WHEN 'victim_woman' THEN 2
        WHEN 'offender_minor' THEN 3
        WHEN 'offender_youth' THEN 4
        WHEN 'domestic' THEN 5
        ELSE 6
    END

-- Incidents per category with their mean severity and flags.
SELECT
    category,
    count(*) AS incidents,
    round(avg(severity), 2) AS mean_severity,
    sum(CASE WHEN victim_woman THEN 1 ELSE 0 END) AS victim_woman,
    sum(CASE WHEN domestic THEN 1 ELSE 0 END) AS domestic
FROM incidents
GROUP BY category
ORDER BY incidents DESC, category

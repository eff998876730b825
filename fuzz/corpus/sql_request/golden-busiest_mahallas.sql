-- The mahallas with the most offences (incidents and fraud flags), with names.
SELECT m.mahalla_id, m.name, m.district_name, count(*) AS offences
FROM events e
JOIN mahallas m ON m.mahalla_id = e.mahalla_id
WHERE e.kind IN ('incident', 'fraud_flag')
GROUP BY m.mahalla_id, m.name, m.district_name
ORDER BY offences DESC, m.mahalla_id
LIMIT 10

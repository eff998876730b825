-- One day in one resolution-6 cell, per hour of the local day.
SELECT date_part('hour', occurred_at AT TIME ZONE 'Asia/Tashkent') AS local_hour, count(*) AS events
FROM events
WHERE h3_cell_to_parent(cell, 6) = h3_cell_to_parent(h3_latlng_to_cell(41.3111, 69.2797, 10), 6)
  AND local_date = DATE '2026-05-02'
GROUP BY 1
ORDER BY 1

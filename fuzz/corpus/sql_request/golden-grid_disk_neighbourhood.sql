-- Events in the grid disk of radius 3 around a point, per kind.
SELECT kind, count(*) AS events
FROM events
WHERE array_has(h3_grid_disk(h3_latlng_to_cell(41.3111, 69.2797, 10), 3), cell)
GROUP BY kind
ORDER BY kind

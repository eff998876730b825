-- The five resolution-8 cells with the most events.
SELECT h3_h3_to_string(h3_cell_to_parent(cell, 8)) AS cell8, count(*) AS events
FROM events
GROUP BY h3_cell_to_parent(cell, 8)
ORDER BY events DESC, cell8
LIMIT 5

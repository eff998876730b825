-- A cell's boundary as WKT (closed ring, lng lat, 6 decimals, as in DuckDB).
SELECT h3_cell_to_boundary_wkt(h3_latlng_to_cell(41.3111, 69.2797, 9)) AS wkt

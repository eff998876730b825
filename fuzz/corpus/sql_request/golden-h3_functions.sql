-- The H3 functions on one Tashkent point, under DuckDB's names.
SELECT
    h3_latlng_to_cell(41.3111, 69.2797, 10) AS cell,
    h3_h3_to_string(h3_latlng_to_cell(41.3111, 69.2797, 10)) AS hex,
    h3_get_resolution(h3_latlng_to_cell(41.3111, 69.2797, 10)) AS res,
    h3_h3_to_string(h3_cell_to_parent(h3_latlng_to_cell(41.3111, 69.2797, 10), 7)) AS parent7,
    cardinality(h3_cell_to_children(h3_cell_to_parent(h3_latlng_to_cell(41.3111, 69.2797, 10), 8), 10)) AS children,
    cardinality(h3_grid_disk(h3_latlng_to_cell(41.3111, 69.2797, 10), 2)) AS disk2,
    cardinality(h3_grid_ring(h3_latlng_to_cell(41.3111, 69.2797, 10), 2)) AS ring2,
    h3_grid_distance(
        h3_latlng_to_cell(41.3111, 69.2797, 10),
        h3_latlng_to_cell(41.3200, 69.2900, 10)
    ) AS distance,
    round(h3_cell_to_lat(h3_latlng_to_cell(41.3111, 69.2797, 10)), 6) AS lat,
    round(h3_cell_to_lng(h3_latlng_to_cell(41.3111, 69.2797, 10)), 6) AS lng,
    round(h3_cell_area(h3_latlng_to_cell(41.3111, 69.2797, 10), 'm^2'), 1) AS area_m2,
    h3_string_to_h3('8a2a1072b59ffff') AS from_string

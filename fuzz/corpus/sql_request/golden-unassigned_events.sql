-- Events outside every mahalla are kept, with NULL geography.
SELECT id, kind, mahalla_id, district_id, region_id, mahalla_of(lat, lng) AS located
FROM events
WHERE mahalla_id IS NULL
ORDER BY id

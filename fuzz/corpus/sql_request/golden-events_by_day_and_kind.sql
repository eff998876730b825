-- Events per local (Asia/Tashkent) day and kind.
SELECT local_date, kind, count(*) AS events
FROM events
GROUP BY local_date, kind
ORDER BY local_date, kind

-- Fraud flags per scheme and channel: count and amount in millions of soum.
SELECT scheme, channel, count(*) AS flags, round(sum(amount_uzs) / 1e6, 1) AS amount_muzs
FROM fraud_flags
GROUP BY scheme, channel
ORDER BY flags DESC, scheme, channel
LIMIT 12

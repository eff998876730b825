-- Writing files is refused.
COPY (SELECT * FROM events) TO '/tmp/events.csv'

-- Confident drug hand-off detections per camera.
SELECT camera_id, count(*) AS detections, round(max(confidence), 3) AS max_confidence
FROM camera_alerts
WHERE detection = 'drug_handoff' AND confidence >= 0.8
GROUP BY camera_id
ORDER BY detections DESC, camera_id
LIMIT 10

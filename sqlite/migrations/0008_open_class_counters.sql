-- Open incidents by class and severity, counted like the other incident
-- counters (warden.OpenClassKey, kept by StatsDelta with every incident
-- write), so the metrics never scan the open incidents, which a store that
-- contains alerts and never resolves them accumulates by the million. The
-- existing incidents are counted once, here.
INSERT INTO incident_stats (key, n)
	SELECT 'open_class:' || class || ':' || json_extract(record, '$.severity'), COUNT(*)
	FROM incidents
	WHERE state IN ('open', 'contained', 'containment_failed')
	GROUP BY class, json_extract(record, '$.severity');

# The recovery runbook's "Return to Trusted Mode — Full Ceremony Flow",
# commands copied verbatim from seed 001. TestRunbookCurlCommands runs this
# file with bash after pointing localhost:8515 at a test server and the
# example incident id at a real one.
set -euo pipefail

# 1. Detect the Incident
curl -s http://localhost:8515/health | jq .

# 2. Identify the Incident
curl -s http://localhost:8515/api/v1/incidents?state=contained | jq .
curl -s http://localhost:8515/api/v1/incidents?state=contained | jq '.[] | {id, class, severity, state}'

# 3. Review Evidence and Root Cause
curl -s "http://localhost:8515/api/v1/incidents/get?id=INC-20260314-120000-0001" | jq .

# 5. Check Recovery Requirements
curl -s http://localhost:8515/api/v1/recovery/status | jq .

# 6. Acknowledge the Incident
curl -s -X POST http://localhost:8515/api/v1/recovery/ack \
  -H "Content-Type: application/json" \
  -d '{
    "incident_id": "INC-20260314-120000-0001",
    "operator": "admin@secai"
  }' | jq .

# 7. Trigger Re-Attestation (if required)
curl -s -X POST http://localhost:8515/api/v1/recovery/reattest \
  -H "Content-Type: application/json" \
  -d '{
    "incident_id": "INC-20260314-120000-0001"
  }' | jq .

# 8. Verify Recovery Complete
curl -s http://localhost:8515/api/v1/recovery/status | jq .

# 9. Resolve the Incident
curl -s -X POST http://localhost:8515/api/v1/incidents/resolve \
  -H "Content-Type: application/json" \
  -d '{"id": "INC-20260314-120000-0001"}' | jq .

# 10. Verify System Health
curl -s http://localhost:8515/health | jq .

# Incident statistics and the forensic bundle
curl -s http://localhost:8515/api/v1/stats | jq .
curl -s http://localhost:8515/api/v1/forensic/export -o forensic-bundle.json
jq '{exported_at, bundle_hash, signature}' forensic-bundle.json
jq '.incidents | length' forensic-bundle.json
jq '.incidents[] | {id, class, severity, state}' forensic-bundle.json
jq '.system_state' forensic-bundle.json

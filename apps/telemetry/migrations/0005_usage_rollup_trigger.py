from __future__ import annotations

from django.db import migrations

# A statement-level trigger with a transition table: one aggregated upsert per INSERT statement,
# so a bulk insert of a million events costs one pass, and a single metered call one row.
FORWARD = """
CREATE OR REPLACE FUNCTION telemetry_usage_rollup_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO telemetry_integrationusagerollup (provider, bucket_start, calls, errors)
    SELECT provider,
           to_timestamp(floor(extract(epoch FROM created_at) / 300) * 300) AS bucket_start,
           count(*),
           count(*) FILTER (WHERE status <> 'ok')
      FROM new_events
     GROUP BY 1, 2
    ON CONFLICT (provider, bucket_start) DO UPDATE
       SET calls = telemetry_integrationusagerollup.calls + EXCLUDED.calls,
           errors = telemetry_integrationusagerollup.errors + EXCLUDED.errors;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER telemetry_usage_rollup_add
    AFTER INSERT ON telemetry_integrationusageevent
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_usage_rollup_add();

-- Events recorded before the trigger existed.
INSERT INTO telemetry_integrationusagerollup (provider, bucket_start, calls, errors)
SELECT provider, to_timestamp(floor(extract(epoch FROM created_at) / 300) * 300), count(*),
       count(*) FILTER (WHERE status <> 'ok')
  FROM telemetry_integrationusageevent GROUP BY 1, 2
ON CONFLICT (provider, bucket_start) DO NOTHING;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS telemetry_usage_rollup_add ON telemetry_integrationusageevent;
DROP FUNCTION IF EXISTS telemetry_usage_rollup_add();
"""


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0004_integration_usage_rollup")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

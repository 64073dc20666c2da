from __future__ import annotations

from django.db import migrations

# A statement-level trigger with a transition table: one aggregated upsert per INSERT statement
# (a bulk insert of a million events is one pass; a single metered call touches two rows), into
# 5-minute and 1-hour buckets.
FORWARD = """
CREATE OR REPLACE FUNCTION telemetry_usage_rollup_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO telemetry_integrationusagerollup (provider, granularity, bucket_start, calls, errors)
    SELECT e.provider, g.seconds,
           to_timestamp(floor(extract(epoch FROM e.created_at) / g.seconds) * g.seconds),
           count(*), count(*) FILTER (WHERE e.status <> 'ok')
      FROM new_events e CROSS JOIN (VALUES (300), (3600)) AS g(seconds)
     GROUP BY 1, 2, 3
    ON CONFLICT (provider, granularity, bucket_start) DO UPDATE
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
INSERT INTO telemetry_integrationusagerollup (provider, granularity, bucket_start, calls, errors)
SELECT e.provider, g.seconds, to_timestamp(floor(extract(epoch FROM e.created_at) / g.seconds) * g.seconds),
       count(*), count(*) FILTER (WHERE e.status <> 'ok')
  FROM telemetry_integrationusageevent e CROSS JOIN (VALUES (300), (3600)) AS g(seconds)
 GROUP BY 1, 2, 3
ON CONFLICT (provider, granularity, bucket_start) DO NOTHING;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS telemetry_usage_rollup_add ON telemetry_integrationusageevent;
DROP FUNCTION IF EXISTS telemetry_usage_rollup_add();
"""


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0004_integration_usage_rollup")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

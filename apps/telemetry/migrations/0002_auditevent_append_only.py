from __future__ import annotations

from django.db import migrations

# Append-only at the database: not even raw SQL from the application role may rewrite history.
# (TRUNCATE is not row-level and stays possible for test-database teardown.)
FORWARD = """
CREATE OR REPLACE FUNCTION telemetry_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'telemetry_auditevent is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER telemetry_auditevent_append_only
    BEFORE UPDATE OR DELETE ON telemetry_auditevent
    FOR EACH ROW EXECUTE FUNCTION telemetry_auditevent_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS telemetry_auditevent_append_only ON telemetry_auditevent;
DROP FUNCTION IF EXISTS telemetry_auditevent_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

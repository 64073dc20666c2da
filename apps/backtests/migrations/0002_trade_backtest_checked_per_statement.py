"""A backtest's trades reference it through checks that run once per statement instead of
PostgreSQL's foreign key, whose trigger runs once per inserted row (a key lookup and a lock each:
about 28 ms of the server's CPU for the 6,000 trades of one matrix run, as much as the COPY that
inserts them). Same guarantees for every writer:

- inserting (or re-pointing) trades: every referenced backtest exists, and is locked FOR KEY SHARE
  until the end of the transaction, as the foreign key locks it, so no concurrent delete can
  remove it before the trades commit;
- deleting (or re-numbering) backtests: none may keep trades (Django's cascade deletes them first).

The trades' own index on backtest_id goes too: backtest_trade_seq_unique (backtest_id, seq) leads
with it.
"""

import django.db.models.deletion
from django.db import migrations, models

CHECKS = """
CREATE FUNCTION backtests_trade_backtest_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    SELECT count(DISTINCT backtest_id) INTO wanted FROM new_trades;
    SELECT count(*) INTO found FROM (
        SELECT b.id FROM backtests_backtest b
        WHERE b.id IN (SELECT backtest_id FROM new_trades)
        FOR KEY SHARE OF b
    ) AS locked;
    IF found <> wanted THEN
        RAISE EXCEPTION 'a backtest trade refers to a backtest that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION backtests_trade_backtest_exists_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM backtests_backtest WHERE id = NEW.backtest_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a backtest trade refers to a backtest that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION backtests_backtest_keeps_no_trades() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_backtests o JOIN backtests_backtesttrade t ON t.backtest_id = o.id) THEN
        RAISE EXCEPTION 'a backtest with trades cannot be deleted before its trades'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION backtests_backtest_keeps_no_trades_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM backtests_backtesttrade WHERE backtest_id = OLD.id) THEN
        RAISE EXCEPTION 'a backtest with trades cannot change its id'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- Inserted trades (a COPY is one statement): one check for all of them.
CREATE TRIGGER backtests_trade_backtest_exists AFTER INSERT ON backtests_backtesttrade
    REFERENCING NEW TABLE AS new_trades
    FOR EACH STATEMENT EXECUTE FUNCTION backtests_trade_backtest_exists();
-- A trade moved to another backtest (nothing does this): checked row by row.
CREATE TRIGGER backtests_trade_backtest_moved AFTER UPDATE OF backtest_id ON backtests_backtesttrade
    FOR EACH ROW WHEN (OLD.backtest_id IS DISTINCT FROM NEW.backtest_id)
    EXECUTE FUNCTION backtests_trade_backtest_exists_row();
CREATE TRIGGER backtests_backtest_keeps_no_trades AFTER DELETE ON backtests_backtest
    REFERENCING OLD TABLE AS old_backtests
    FOR EACH STATEMENT EXECUTE FUNCTION backtests_backtest_keeps_no_trades();
CREATE TRIGGER backtests_backtest_renumbered AFTER UPDATE OF id ON backtests_backtest
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION backtests_backtest_keeps_no_trades_row();
"""

UNDO = """
DROP TRIGGER backtests_backtest_renumbered ON backtests_backtest;
DROP TRIGGER backtests_backtest_keeps_no_trades ON backtests_backtest;
DROP TRIGGER backtests_trade_backtest_moved ON backtests_backtesttrade;
DROP TRIGGER backtests_trade_backtest_exists ON backtests_backtesttrade;
DROP FUNCTION backtests_backtest_keeps_no_trades_row();
DROP FUNCTION backtests_backtest_keeps_no_trades();
DROP FUNCTION backtests_trade_backtest_exists_row();
DROP FUNCTION backtests_trade_backtest_exists();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("backtests", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="backtesttrade",
            name="backtest",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="trades",
                to="backtests.backtest",
            ),
        ),
        migrations.RunSQL(CHECKS, UNDO),
    ]

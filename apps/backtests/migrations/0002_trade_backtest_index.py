"""The trades' own index on backtest_id goes: backtest_trade_seq_unique (backtest_id, seq) leads
with it, and a matrix run inserts thousands of trades in one COPY (one index fewer to maintain)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("backtests", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="backtesttrade",
            name="backtest",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="trades",
                to="backtests.backtest",
            ),
        ),
    ]

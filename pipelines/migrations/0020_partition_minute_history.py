"""On Postgres, partition the minute history (pipelines_metricsample) by UTC day on `minute`.

Every existing row is copied into the partitioned table (one partition per day that has rows, plus
today and PARTITION_DAYS_AHEAD days ahead); the unique (pipeline, minute) constraint, the indexes, the
foreign key to pipelines_pipeline and the id sequence's position are kept; the database's primary key
becomes (id, minute), as Postgres requires of a partitioned table, while Django keeps `id` as the pk.
The table is locked against writes while it is copied (reads go on): on a large history, run it in a
quiet period. Reversing converts back to one plain table with the primary key (id). SQLite: nothing.
"""

from django.db import migrations

from pipelines.collection import partitions


def partition(apps, schema_editor):
    partitions.convert_to_partitioned(schema_editor.connection)


def unpartition(apps, schema_editor):
    partitions.convert_to_plain(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0019_pipeline_aws_tags_channel_selectors"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition),
    ]

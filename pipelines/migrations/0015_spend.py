# The consumer's memory size and architecture, discovered from GetFunctionConfiguration: they price
# its duration (pipelines/spend).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pipelines', '0014_slos'),
    ]

    operations = [
        migrations.AddField(
            model_name='pipeline',
            name='function_memory_mb',
            field=models.PositiveIntegerField(blank=True, help_text="Discovered; prices the consumer's duration.", null=True, verbose_name='function memory (MB)'),
        ),
        migrations.AddField(
            model_name='pipeline',
            name='function_architecture',
            field=models.CharField(blank=True, help_text='Discovered: x86_64 or arm64.', max_length=16, verbose_name='function architecture'),
        ),
    ]

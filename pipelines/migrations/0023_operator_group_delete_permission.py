"""The new delete/purge permission goes to everyone who could redrive (who could delete and purge
until now), and the built-in "operator" group holds every pipeline capability on every pipeline."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

#: Every permission a team can grant (pipelines.models.teams.TEAM_PERMS as of this migration).
OPERATOR_CODENAMES = [
    "view_pipeline",
    "view_incident",
    "view_alertrule",
    "view_silence",
    "view_redrivetask",
    "view_triagescan",
    "view_metricsample",
    "peek_dlq",
    "view_message_bodies",
    "redrive_dlq",
    "delete_dlq_messages",
    "lookup_trace",
    "change_incident",
    "add_silence",
    "change_silence",
    "add_alertrule",
    "change_alertrule",
    "delete_alertrule",
]


def forwards(apps, schema_editor):
    config = apps.get_app_config("pipelines")
    config.models_module = True  # create_permissions skips an app without models
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("auth", "User")
    perms = Permission.objects.filter(content_type__app_label="pipelines")
    redrive = perms.filter(codename="redrive_dlq").first()
    delete = perms.filter(codename="delete_dlq_messages").first()
    if redrive and delete:
        for user in User.objects.filter(user_permissions=redrive):
            user.user_permissions.add(delete)
        for group in Group.objects.filter(permissions=redrive):
            group.permissions.add(delete)
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.add(*perms.filter(codename__in=OPERATOR_CODENAMES))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("pipelines", "0022_teams_api_tokens_audit"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

"""Settings come from the environment; bad configuration stops with a sentence saying what to set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROD = {
    "SECRET_KEY": "k" * 20 + "Zq8!xW2@pL5#nR7$tY9%vB1^cD3&fG6*hJ4",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "ops.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://ops.example.com",
}


def run_manage(*args, env_overrides=None):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "DEBUG", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE")
    }
    env.update({"DJANGO_SETTINGS_MODULE": "opsboard.settings", **(env_overrides or {})})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_it_requires_a_secret_key_when_debug_is_off():
    res = run_manage("check", env_overrides={"DEBUG": "false"})
    assert res.returncode != 0
    assert "Set SECRET_KEY to a long random string" in res.stderr and "Traceback" not in res.stderr


def test_debug_runs_without_a_secret_key():
    assert run_manage("check", env_overrides={"DEBUG": "true"}).returncode == 0


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("DATABASE_URL", "nosuchdb://x", "DATABASE_URL is not a database URL"),
        ("DEBUG", "maybe", "DEBUG is malformed"),
        ("FAST_INTERVAL_SECONDS", "0", "FAST_INTERVAL_SECONDS must be a positive"),
        ("AWS_RETRY_MODE", "sometimes", "AWS_RETRY_MODE must be one of"),
        ("SLO_API_5XX_PERCENT", "0", "SLO_API_5XX_PERCENT must be a percentage above 0"),
        ("SLO_API_LATENCY_MS", "0", "SLO_API_LATENCY_MS a whole number of milliseconds from 1 to 60000"),
    ],
)
def test_bad_values_name_the_variable(name, value, message):
    res = run_manage("check", env_overrides={**PROD, name: value})
    assert res.returncode != 0 and message in res.stderr and "Traceback" not in res.stderr


def test_a_price_table_that_cannot_be_read_stops_start_up_with_a_sentence(tmp_path):
    broken = tmp_path / "prices.json"
    broken.write_text('{"regions": ')
    res = run_manage("check", env_overrides={**PROD, "SPEND_PRICES_FILE": str(broken)})
    assert res.returncode != 0 and "fix SPEND_PRICES_FILE" in res.stderr and "Traceback" not in res.stderr


def test_production_settings_pass_the_deploy_check(tmp_path):
    res = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={**PROD, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no issues" in res.stdout


def test_embedded_defaults_use_sqlite_and_the_filesystem_broker(settings):
    from django.conf import settings as live

    if "DATABASE_URL" not in os.environ:
        assert live.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    if "CELERY_BROKER_URL" not in os.environ:
        assert live.CELERY_BROKER_URL == "filesystem://"
        assert Path(live.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).is_dir()
    assert live.TIME_ZONE == "UTC" and live.USE_TZ

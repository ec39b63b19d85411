"""docker-compose.yml cannot run here (no Docker engine), so check it agrees with the code."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def documented_variables():
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))


def settings_variables():
    text = (ROOT / "opsboard" / "settings.py").read_text()
    return set(re.findall(r'(?:env\.\w+\(|_env\(env\.\w+,|_bool\()\s*"([A-Z][A-Z0-9_]+)"', text))


def test_it_has_the_production_like_services():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "aws"} <= set(services)
    web = " ".join(services["web"]["command"])
    assert "migrate" in web and "gunicorn opsboard.wsgi" in web
    assert services["worker"]["command"][:4] == ["celery", "-A", "opsboard", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "opsboard", "beat"]
    assert services["aws"]["image"].startswith("motoserver/moto:")
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["env_file"][0]["path"] == ".env"


def test_every_variable_is_read_by_settings_and_documented():
    read = settings_variables()
    assert {
        "SECRET_KEY",
        "DEBUG",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "RAW_RETENTION_DAYS",
    } <= read
    missing = read - documented_variables()
    assert not missing, f"settings read variables .env.example does not document: {missing}"
    boto = {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_PROFILE"}
    assert boto <= documented_variables()
    app_env = compose()["services"]["web"]["environment"]
    unknown = set(app_env) - read - boto
    assert not unknown, f"compose sets variables settings never read: {unknown}"


def test_the_stack_points_at_its_own_services():
    env = compose()["services"]["worker"]["environment"]
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["CELERY_BROKER_URL"].endswith("redis:6379/0}")
    assert "http://aws:5000" in env["AWS_ENDPOINT_URL"]


def test_the_image_carries_what_the_commands_need():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("opsboard", "pipelines", "templates", "manage.py", "collectstatic"):
        assert part in dockerfile
    from opsboard.celery import app

    app.loader.import_default_modules()
    assert "pipelines.tasks.fast_cycle" in app.tasks and "pipelines.tasks.metrics_cycle" in app.tasks
    import opsboard.wsgi  # noqa: F401 - gunicorn's target imports


def test_the_image_leaves_the_demo_and_the_emulator_out():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "emulator" not in re.sub(r"#.*", "", dockerfile) and "opsboard_demo" not in dockerfile
    assert "COPY pipelines ./pipelines" in dockerfile


def published_addresses(service):
    """The host address each published port binds, `${VAR:-default}` read as its default ('' = every interface)."""
    out = []
    for port in service.get("ports", []):
        text = re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", str(port))
        parts = text.rsplit(":", 2)
        out.append(parts[0] if len(parts) == 3 else "")
    return out


def test_it_publishes_ports_on_loopback_only_unless_told_otherwise():
    services = compose()["services"]
    for name, service in services.items():
        for address in published_addresses(service):
            assert address == "127.0.0.1", f"{name} publishes a port on {address or 'every interface'}"
    (web_port,) = services["web"]["ports"]
    variable = re.match(r"\$\{([A-Z0-9_]+):-127\.0\.0\.1\}:8000:8000$", web_port)
    assert variable, "the web port's address should be overridable"
    assert variable.group(1) in documented_variables()


def test_the_worker_can_be_scaled_and_beat_stays_single():
    """`docker compose up --scale worker=N` needs a worker with no fixed name or host port, and the
    workers must not each run a beat (`-B`): one beat service enqueues the cycles."""
    services = compose()["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "-B" not in worker["command"] and "--beat" not in worker["command"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1

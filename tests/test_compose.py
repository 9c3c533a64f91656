"""The production ``docker-compose.yml`` and ``deploy/Dockerfile``, checked without Docker.

No engine runs in the test suite, so these tests check what a typo would break and only a
deployment would reveal: the wiring of the services, their health checks and restart policies,
that each container runs a real ``liverec`` command, and that it gets real settings.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from liverec.cli import build_parser
from liverec.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"

LIVEREC_SERVICES = {"worker": ["worker"], "web": ["web"], "replay": ["generate", "replay"],
                    "demo": ["demo"]}
"""Services that run the liverec image, and the subcommands each one runs, in order."""
LONG_RUNNING = ("kafka", "redis", "worker", "web", "demo", "prometheus", "grafana")
DEFAULT_SERVICES = ("kafka", "redis", "worker", "web")
"""What a plain ``docker compose up`` starts: the others sit behind a profile."""

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>.*))?",
                     re.DOTALL)


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with every VAR unset: the file must work without a .env."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        body = match.group("braced")
        spec = _BRACED.fullmatch(body) if body is not None else None
        if spec is None or spec["op"] is None:
            raise ValueError(f"{match.group(0)} has no default")
        return spec["default"]

    return _VARIABLE.sub(one, text)


def _resolve(node: Any) -> Any:
    if isinstance(node, str):
        return interpolate(node)
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    if isinstance(node, dict):
        return {key: _resolve(value) for key, value in node.items()}
    return node


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the ``KEY=VALUE`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def settings_of(env: dict[str, str]) -> Settings:
    """The Settings a container gets: every variable must be a LIVEREC_* field, with a valid
    value (a misspelt or interpolation-only name would be silently ignored by the app)."""
    fields: dict[str, str] = {}
    for key, value in env.items():
        name = key.removeprefix("LIVEREC_").lower()
        if not key.startswith("LIVEREC_") or name not in Settings.model_fields:
            raise ValueError(f"{key} is not a liverec setting")
        fields[name] = value
    return Settings.model_validate(fields)


def liverec_argvs(command: list[str] | str, tmp_path: Path) -> list[list[str]]:
    """The argv of each command a service runs; ``sh -c "a && b"`` gives one per command.

    A file an earlier command writes (``--out``) is moved into tmp_path and created there, as
    that command would: argparse checks that a later command's input file exists.
    """
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if argv[:2] == ["sh", "-c"]:
        assert len(argv) == 3, argv
        steps = [shlex.split(part) for part in argv[2].split("&&")]
    else:
        steps = [argv]
    written: dict[str, str] = {}
    result = []
    for step in steps:
        step = [written.get(arg, arg) for arg in step]
        for i, flag in enumerate(step[:-1]):
            if flag == "--out":
                local = tmp_path / Path(step[i + 1]).name
                local.touch()
                written[step[i + 1]] = step[i + 1] = str(local)
        result.append(step)
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse like the ``liverec`` script would; argparse exits (SystemExit) on a bad flag."""
    assert argv[0] == "liverec", argv
    return build_parser().parse_args(argv[1:])


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def probe(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def container_ports(service: dict[str, Any]) -> list[str]:
    return [str(p).rsplit(":", 1)[-1].split("/")[0] for p in service.get("ports", [])]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services with every variable replaced by its default, as Compose would."""
    return _resolve(raw)["services"]


# --- the helpers reject what they must ------------------------------------------------------


def test_helpers_reject_bad_flags_missing_defaults_and_unknown_settings(tmp_path: Path) -> None:
    """Without these, the checks below could pass on anything."""
    assert parse(["liverec", "worker"]).command == "worker"
    with pytest.raises(SystemExit):
        parse(["liverec", "worker", "--nope"])
    script = ("liverec generate --sessions 1 --items 1 --out /tmp/a.jsonl"
              " && liverec replay {} --to kafka://kafka:9092")
    generate, replay = liverec_argvs(["sh", "-c", script.format("/tmp/a.jsonl")], tmp_path)
    assert parse(generate).out == parse(replay).file == tmp_path / "a.jsonl"
    _, replay = liverec_argvs(["sh", "-c", script.format("/nonexistent/b.jsonl")], tmp_path)
    with pytest.raises(SystemExit):  # replaying a file no earlier command writes
        parse(replay)
    assert interpolate("${A:-x} ${B-} $$C") == "x  $C"
    with pytest.raises(ValueError, match="no default"):
        interpolate("kafka://${KAFKA_HOST}:9092")
    assert settings_of({"LIVEREC_PARTITIONS": "8"}).partitions == 8
    for bad in ({"LIVEREC_NOPE": "1"}, {"LIVEREC_WEB_PORT": "8000"}, {"BUS": "kafka://k:1"},
                {"LIVEREC_PARTITIONS": "0"}):
        with pytest.raises(ValueError):
            settings_of(bad)


# --- the file -----------------------------------------------------------------------------


def test_file_follows_the_compose_specification(raw: dict[str, Any]) -> None:
    """No obsolete ``version:``; the services of the production layout are all there."""
    assert "version" not in raw
    assert {"kafka", "redis", "worker", "web", "replay", "demo"} <= set(raw["services"])


def test_named_volumes_are_declared(raw: dict[str, Any],
                                    services: dict[str, dict[str, Any]]) -> None:
    """Compose refuses a named volume missing from the top-level ``volumes:``."""
    declared = set(raw.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


# --- kafka and redis ----------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_with_persistent_data(
        services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"], "a fixed cluster id keeps the formatted volume valid"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                     .split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocols) and controller in listeners
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{env['KAFKA_NODE_ID']}@kafka{listeners[controller]}")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert listeners["PLAINTEXT"] == ":9092"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_MIN_INSYNC_REPLICAS"):
        assert env[key] == "1", key
    assert env["KAFKA_NUM_PARTITIONS"] == environment(services["worker"])["LIVEREC_PARTITIONS"]
    mounts = [v.split(":")[1] for v in kafka["volumes"]]
    assert env["KAFKA_LOG_DIRS"] in mounts


def test_redis_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert command[0] == "redis-server"
    pairs = list(zip(command, command[1:], strict=False))
    assert ("--appendonly", "yes") in pairs and ("--appendfsync", "everysec") in pairs
    assert ("--auto-aof-rewrite-min-size", "1gb") in pairs
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])


# --- the liverec services -----------------------------------------------------------------


def test_liverec_services_run_the_one_image(services: dict[str, dict[str, Any]]) -> None:
    """One service builds the image, under one name; the others run that name and never
    pull it (no registry has it), so ``docker compose build`` builds once."""
    built = {name for name, service in services.items() if "build" in service}
    assert built == {"worker"}
    build = services["worker"]["build"]
    assert (build["context"], build["dockerfile"]) == (".", "deploy/Dockerfile")
    assert (REPO / build["context"] / build["dockerfile"]).is_file()
    images = {services[name]["image"] for name in LIVEREC_SERVICES}
    assert images == {"liverec:local"}
    for name in set(LIVEREC_SERVICES) - built:
        assert services[name]["pull_policy"] == "never", name


def test_published_ports_listen_on_the_loopback_unless_told(
        services: dict[str, dict[str, Any]], raw: dict[str, Any]) -> None:
    """The page, the demo, Prometheus and Grafana are reachable from this host only by
    default (``LIVEREC_BIND`` opens them, behind a proxy); Kafka and Redis publish nothing."""
    published = {name: service["ports"] for name, service in services.items()
                 if service.get("ports")}
    assert set(published) == {"web", "demo", "prometheus", "grafana"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    for name in published:
        assert all("${LIVEREC_BIND:-127.0.0.1}:" in str(p) for p in raw["services"][name]["ports"])


@pytest.mark.parametrize("name", list(LIVEREC_SERVICES))
def test_service_runs_a_real_liverec_command(name: str, services: dict[str, dict[str, Any]],
                                             tmp_path: Path) -> None:
    """Each command parses with the real CLI: a renamed flag or subcommand fails here."""
    argvs = liverec_argvs(services[name]["command"], tmp_path)
    assert [parse(argv).command for argv in argvs] == LIVEREC_SERVICES[name]


def test_services_get_only_real_settings(services: dict[str, dict[str, Any]],
                                        tmp_path: Path) -> None:
    """Containers get LIVEREC_* settings with valid values, and reach kafka and redis by name;
    LIVEREC_WEB_PORT and the like only shape the file and must not leak in."""
    kafka_bus = "kafka://" + environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(
        "://")[1]
    for name in LIVEREC_SERVICES:
        settings = settings_of(environment(services[name]))
        if name != "demo":
            assert settings.bus == kafka_bus, name
        if name in ("worker", "web"):
            assert settings.store == "redis://redis:6379/0", name
    worker = settings_of(environment(services["worker"]))
    assert worker.host == "0.0.0.0" and worker.metrics_port > 0
    assert settings_of(environment(services["web"])).ingest_key == ""  # no key unless given
    replay = liverec_argvs(services["replay"]["command"], tmp_path)[-1]
    assert flag(replay, "--to") == kafka_bus


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    """``--scale worker=N`` needs no fixed container name and no fixed host port."""
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_long_running_services_are_checked_and_restarted(
        services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        service = services[name]
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"
        assert check["test"] != ["NONE"], name
        assert str(service.get("restart", "no")).split(":")[0] in (
            "always", "unless-stopped", "on-failure"), f"{name}: no restart policy"


def test_healthchecks_probe_the_ports_served(services: dict[str, dict[str, Any]],
                                            tmp_path: Path) -> None:
    """A probe on the wrong port marks a working container unhealthy; a worker's is its
    readiness (partitions, Kafka, Redis, lag), not its metrics, which always answer."""
    worker = services["worker"]
    port = environment(worker)["LIVEREC_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in probe(worker)
    for name, path in (("web", "/readyz"), ("demo", "/healthz")):
        argv = liverec_argvs(services[name]["command"], tmp_path)[0]
        assert flag(argv, "--host") == "0.0.0.0", name
        assert container_ports(services[name]) == [flag(argv, "--port")], name
        assert f"http://127.0.0.1:{flag(argv, '--port')}{path}" in probe(services[name]), name
    assert "localhost:9092" in probe(services["kafka"])
    assert "redis-cli ping" in probe(services["redis"])


def test_workers_and_web_wait_for_healthy_kafka_and_redis(
        services: dict[str, dict[str, Any]]) -> None:
    for name, needs in (("worker", ("kafka", "redis")), ("web", ("kafka", "redis")),
                        ("replay", ("kafka",))):
        depends = services[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: list form cannot wait for health"
        for dependency in needs:
            assert depends.get(dependency, {}).get("condition") == "service_healthy", name


def test_profiles_keep_jobs_out_of_a_plain_up(services: dict[str, dict[str, Any]]) -> None:
    """``docker compose up`` starts the layout; the replay job and the demo are opt-in."""
    for name in DEFAULT_SERVICES:
        assert not services[name].get("profiles"), name
    assert services["replay"]["profiles"] == ["replay"]
    assert services["replay"]["restart"] == "no"  # quoted in YAML, or it reads as false
    assert services["demo"]["profiles"] == ["demo"]


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_serves_every_role() -> None:
    """Every package is copied in, both ports are exposed, the default command is real, and
    no image-wide health check probes a web port a worker does not serve."""
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert not [line for line in lines if line.upper().startswith("HEALTHCHECK")]
    exposed = {port for line in lines if line.startswith("EXPOSE") for port in line.split()[1:]}
    assert {"8000", "9108"} <= exposed
    (cmd,) = [line for line in lines if line.startswith("CMD")]
    assert parse(json.loads(cmd.removeprefix("CMD"))).command == "demo"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} {package}" in lines, package


def test_the_build_context_leaves_out_local_state_and_keeps_what_the_image_copies() -> None:
    """After ``make test`` a checkout holds a virtualenv, Kafka's and Redis's data, the local
    cluster's logs and the runbook's files: none of it may reach the build context, and
    nothing the Dockerfile copies may be left out."""
    import fnmatch

    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", "deploy/local/.services", "deploy/local/.cluster", "var"} <= set(
        ignored)
    copied = [part for line in DOCKERFILE.read_text().splitlines()
              if line.startswith("COPY ") and "--from" not in line
              for part in line.split()[1:-1]]
    assert copied
    for source in copied:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source

"""Issue 23, item 3: deploy/kubernetes/blockmon.yaml's probes hit what blockmon serves, on
the port it listens on, and its numbers fit together (start-up covers a migration waiting
for a lock, readiness takes the pod out before the server stops accepting, the grace
period covers the drain). The container's command is then run here, with the manifest's
configuration, and each probe's path answers 200."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from blockmon.config.settings import PostgresSettings, Settings
from blockmon.monitoring.app import PATHS
from tests.monitoring.support import free_port, plain
from tests.test_main_job import child_env, database_url, kill, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "blockmon.yaml"
EXAMPLE = ROOT / "examples" / "alert_rules"


def documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def container_spec() -> dict[str, Any]:
    (container,) = documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    spec: dict[str, Any] = container
    return spec


def manifest_settings() -> Settings:
    text = documents()["ConfigMap"]["data"]["config.yml"]
    return Settings.model_validate(yaml.safe_load(text))


def probe_port(probe: dict[str, Any], container: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (named,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(named)


def test_the_probes_match_what_blockmon_serves() -> None:
    container = container_spec()
    settings = manifest_settings()
    startup, ready, live = (
        container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")
    )
    assert startup["httpGet"]["path"] == "/livez" and "/livez" in PATHS
    assert live["httpGet"]["path"] == "/livez"
    assert ready["httpGet"]["path"] == "/readyz" and "/readyz" in PATHS
    for probe in (startup, ready, live):
        assert probe_port(probe, container) == settings.monitoring.http_port
    assert settings.monitoring.http_host == "0.0.0.0"  # the kubelet comes from outside
    assert "--port" not in container["args"] and "--host" not in container["args"]
    (env,) = [e["value"] for e in container["env"] if e["name"] == "BLOCKMON_CONFIG"]
    (mount,) = container["volumeMounts"]
    assert Path(env).parent == Path(mount["mountPath"]) and Path(env).name == "config.yml"
    service = documents()["Service"]["spec"]["ports"][0]
    assert service["targetPort"] in [p["name"] for p in container["ports"]]


def test_the_numbers_fit_together() -> None:
    container = container_spec()
    monitoring = manifest_settings().monitoring
    migrations = manifest_settings().migrations
    startup, ready = container["startupProbe"], container["readinessProbe"]
    # start-up lasts longer than a migration waiting for another pod's lock
    assert startup["periodSeconds"] * startup["failureThreshold"] > migrations.lock_wait + 60
    # readiness fails and the pod leaves the Service before the server stops accepting
    assert ready["periodSeconds"] * ready["failureThreshold"] < monitoring.shutdown_delay
    assert ready["timeoutSeconds"] > monitoring.check_timeout
    spec = documents()["Deployment"]["spec"]["template"]["spec"]
    drain = monitoring.shutdown_delay + monitoring.shutdown_timeout
    assert spec["terminationGracePeriodSeconds"] >= drain + 10


async def test_the_containers_command_answers_every_probe(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    container = container_spec()
    config = yaml.safe_load(documents()["ConfigMap"]["data"]["config.yml"])
    config["monitoring"]["http_host"] = "127.0.0.1"  # nothing listens beyond this machine
    port = free_port()
    config["monitoring"]["http_port"] = port
    config["monitoring"]["shutdown_delay"] = 1  # the test need not wait for a kubelet
    config["redis"] = plain(blockmon_config["redis"])  # this run's server and key prefix
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    env = child_env(
        BLOCKMON_CONFIG=str(path),
        PYTHONPATH=str(EXAMPLE),
        DATABASE_URL=database_url(blockmon_fresh_database),
    )
    program, *args = container["args"]
    assert program == "blockmon" and shutil.which(program, path=str(Path(sys.executable).parent))
    process = await start(sys.executable, "-m", "blockmon", *args, env=env, cwd=tmp_path)
    try:
        await wait_for(process, "application", [])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                answer = await http.get(container[kind]["httpGet"]["path"])
                assert answer.status_code == 200, (kind, answer.text)
        await stop(process)  # SIGINT: drains, then exits 0
    finally:
        await kill(process)

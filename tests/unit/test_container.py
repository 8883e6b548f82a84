"""The container image's start (docker/run.sh), in the bridges' flow: the first start writes
the example config into /data, the second generates the registration, the third runs the
service. Run here with a directory for /data and this interpreter for the command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "docker" / "run.sh"


def start(data: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COMMUNITIES_DATA": str(data),
        "COMMUNITIES_EXAMPLE_CONFIG": str(ROOT / "config.example.yaml"),
        "COMMUNITIES_COMMAND": f"{sys.executable} -m communities_appservice",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(["sh", str(RUN)], env=env, capture_output=True, text=True, timeout=60)


def test_the_first_start_writes_the_config_and_the_second_the_registration(
    tmp_path: Path,
) -> None:
    first = start(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "edit it" in first.stderr
    config = tmp_path / "config.yaml"
    assert config.read_text() == (ROOT / "config.example.yaml").read_text()
    assert not (tmp_path / "registration.yaml").exists()

    second = start(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "app_service_config_files" in second.stderr
    registration = yaml.safe_load((tmp_path / "registration.yaml").read_text())
    filled = yaml.safe_load(config.read_text())
    assert registration["as_token"] == filled["appservice"]["as_token"] != "generate"
    assert "# " in config.read_text()  # the comments stay


def test_a_wrong_config_stops_with_one_line_and_no_registration(tmp_path: Path) -> None:
    example = (ROOT / "config.example.yaml").read_text()
    (tmp_path / "config.yaml").write_text(example.replace("max_admins: 20", "max_admins: 0"))
    started = start(tmp_path)
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [
        "config error: communities.max_admins: must be at least 1, not 0"
    ], started.stderr
    assert not (tmp_path / "registration.yaml").exists()


def test_the_dockerfile_copies_what_exists_and_starts_with_run_sh() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["/opt/communities-appservice/run.sh"]' in dockerfile
    assert "VOLUME /data" in dockerfile

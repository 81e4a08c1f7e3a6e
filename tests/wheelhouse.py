"""A wheelhouse made from this test venv's installed distributions, so a fresh virtualenv
can install blockmon's wheel with ``pip install --no-index --find-links``: no network.

Each installed distribution is packed back into a wheel from the files its RECORD lists
(byte code and console scripts left out: pip regenerates them). Only the distributions
the given requirements need (with their extras, for this interpreter) are packed.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_SKIPPED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def needed(roots: list[str]) -> dict[str, Distribution]:
    """The installed distributions ``roots`` need, by canonical name."""
    found: dict[str, Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        requirement = todo.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            raise AssertionError(f"{requirement.name} is not installed in the test venv") from None
        found[name] = dist
        for line in dist.requires or []:
            child = Requirement(line)
            wanted = child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append(child)
    return found


def repack(dist: Distribution, into: Path) -> Path:
    """``dist`` as a wheel file in ``into``."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    parts = [tag.split("-") for tag in tags]  # several tags: the compressed form py2.py3-none-any
    tag = "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
    name = dist.metadata["Name"].replace("-", "_").replace(".", "_")
    target = into / f"{name}-{dist.version}-{tag}.whl"
    records: list[str] = []
    record_path = ""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as wheel:
        for file in dist.files or []:
            parts = file.parts
            if parts[0] == ".." or "__pycache__" in parts or file.suffix == ".pyc":
                continue
            in_info = parts[0].endswith(".dist-info")
            if in_info and file.name == "RECORD":
                record_path = str(file)
            if in_info and file.name in _SKIPPED:
                continue
            path = Path(str(dist.locate_file(file)))
            if not path.is_file():
                continue
            data = path.read_bytes()
            wheel.writestr(str(file), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{file},sha256={digest.decode()},{len(data)}")
        records.append(f"{record_path},,")
        wheel.writestr(record_path, "\n".join(records) + "\n")
    return target


def build(roots: list[str], into: Path, *, exclude: set[str]) -> list[Path]:
    """Wheels for everything ``roots`` need, but the distributions in ``exclude``."""
    into.mkdir(parents=True, exist_ok=True)
    return [repack(d, into) for n, d in needed(roots).items() if n not in exclude]

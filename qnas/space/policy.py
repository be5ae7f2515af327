"""Policy files (``policies/*.yaml``): a genome plus optional metrics and provenance.

The file lists genes in the space's canonical order so that reading and writing a policy
round-trips exactly, text included.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qnas.errors import GenomeError
from qnas.space.genome import Genome, SearchSpace

__all__ = ["Policy", "read_policy", "write_policy", "policy_to_text", "policy_from_text", "atomic_write_text"]

FORMAT_VERSION = 1
_KEYS = ("qnas_policy", "name", "genome", "metrics", "provenance")


@dataclass(frozen=True)
class Policy:
    name: str
    genome: Genome
    metrics: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)


def policy_to_text(policy: Policy, space: SearchSpace) -> str:
    genome = space.validate(policy.genome)
    doc: dict[str, Any] = {
        "qnas_policy": FORMAT_VERSION,
        "name": policy.name,
        "genome": {label: genome[label] for label in space.canonical_order(genome)},
    }
    if policy.metrics:
        doc["metrics"] = dict(policy.metrics)
    if policy.provenance:
        doc["provenance"] = dict(policy.provenance)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def policy_from_text(text: str, space: SearchSpace, source: str = "<policy>") -> Policy:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GenomeError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or "genome" not in doc:
        raise GenomeError(f"{source}: a policy is a mapping with a 'genome' mapping of label: value")
    unknown = [k for k in doc if k not in _KEYS]
    if unknown:
        raise GenomeError(f"{source}: unknown key {unknown[0]!r}; allowed: {list(_KEYS)}")
    if not isinstance(doc["genome"], dict):
        raise GenomeError(f"{source}: 'genome' must be a mapping of label: value")
    try:
        genome = space.validate(doc["genome"])
    except GenomeError as exc:
        raise GenomeError(f"{source}: {exc}") from None
    name = str(doc.get("name") or Path(source).stem)
    for key in ("metrics", "provenance"):
        if not isinstance(doc.get(key) or {}, dict):
            raise GenomeError(f"{source}: {key!r} must be a mapping")
    return Policy(name, genome, doc.get("metrics") or {}, doc.get("provenance") or {})


def read_policy(path: str | os.PathLike[str], space: SearchSpace) -> Policy:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GenomeError(f"policy file not found: {path}") from None
    except OSError as exc:
        raise GenomeError(f"cannot read policy file {path}: {exc.strerror}") from None
    return policy_from_text(text, space, str(path))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written).

    The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode())


def write_policy(path: str | os.PathLike[str], policy: Policy, space: SearchSpace) -> None:
    atomic_write_text(path, policy_to_text(policy, space))

"""Registered network families: a plan builder per name (``space.network`` in the config).

A plan builder ``build(spec, builder)`` writes the network of ``spec`` with a ``PlanBuilder``,
asking the builder for every gene it needs (``choice``, ``depth``, ``bits``); the same function
thus defines the gene table, the genome labels, the plan of any genome and its latency units.
The supernet's modules are built from the plan (``qnas.supernet``); a family needing torch
modules the generic ones cannot express registers them there under the same name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from typing import TYPE_CHECKING

from qnas.space.plan import Gene, GenomePicker, Plan, PlanBuilder, RecordingPicker, Unit

if TYPE_CHECKING:
    from qnas.space.spec import SpaceSpec

__all__ = ["NetworkFamily", "NETWORKS", "register_network", "network_family", "network_plan", "gene_table",
           "space_units", "UnitChoices", "unit_choices", "NOMINAL_HW"]

NOMINAL_HW = (256, 256)  # the resolution at which resolution-free questions (genes, bit widths) are asked

PlanFunction = Callable[["SpaceSpec", PlanBuilder], None]


@dataclass(frozen=True)
class NetworkFamily:
    name: str
    build: PlanFunction
    description: str = ""


NETWORKS: dict[str, NetworkFamily] = {}


def register_network(name: str) -> Callable[[PlanFunction], PlanFunction]:
    """Register a plan builder ``build(spec, builder)`` as the network family ``name``."""

    def decorate(build: PlanFunction) -> PlanFunction:
        if name in NETWORKS:
            raise ValueError(f"network {name!r} is already registered")
        NETWORKS[name] = NetworkFamily(name, build, (build.__doc__ or "").strip().splitlines()[0])
        return build

    return decorate


def network_family(spec: SpaceSpec) -> NetworkFamily:
    return NETWORKS[spec.network]


def _builder(spec: SpaceSpec, pick, height: int, width: int) -> PlanBuilder:
    builder = PlanBuilder(pick, height, width)
    network_family(spec).build(spec, builder)
    return builder


def _build(spec: SpaceSpec, pick, height: int, width: int) -> Plan:
    return _builder(spec, pick, height, width).plan()


@lru_cache(maxsize=4096)
def _cached_plan(spec: SpaceSpec, items: tuple[tuple[str, int], ...], height: int, width: int) -> Plan:
    return _build(spec, GenomePicker(dict(items)), height, width)


def network_plan(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> Plan:
    """The plan of ``genome``'s network on a ``height`` x ``width`` input (cached)."""
    return _cached_plan(spec, tuple(sorted(genome.items())), int(height), int(width))


@lru_cache(maxsize=1024)
def _cached_genes(spec: SpaceSpec, depths: tuple[tuple[str, int], ...]) -> tuple[Gene, ...]:
    picker = RecordingPicker(dict(depths))
    _build(spec, picker, *NOMINAL_HW)
    return tuple(picker.genes)


def gene_table(spec: SpaceSpec, depths: Mapping[str, int] | None = None) -> tuple[Gene, ...]:
    """Every gene the network asks for, in the order it asks, with the given depth genes (default:
    each depth gene at its largest choice)."""
    return _cached_genes(spec, tuple(sorted((depths or {}).items())))


@dataclass(frozen=True)
class UnitChoices:
    """A unit of the deepest network and what the genes can make of it.

    ``genes``: the shape genes asked inside it; ``variants``: for each combination of their values (in
    ``genes`` order) a plan holding the unit so shaped, every other gene at its largest choice. ``depth``:
    the depth gene that decides whether the unit exists, and ``present``, the values at which it does
    (None and all: it always exists).
    """

    unit: Unit
    genes: tuple[Gene, ...]
    variants: tuple[tuple[tuple[int, ...], Plan], ...]
    depth: Gene | None = None
    present: tuple[int, ...] = ()


@lru_cache(maxsize=16)
def unit_choices(spec: SpaceSpec, height: int, width: int) -> tuple[UnitChoices, ...]:
    """Every unit of the deepest network with its shape variants and the depth that decides whether it
    exists: what the space's genes do to each unit, gene by gene (``space_units``, expected costs, the
    relaxed supernet). A unit whose existence depends on more than one depth gene is refused."""
    deepest = _builder(spec, RecordingPicker(), height, width)
    depth_genes = [g for _, g in deepest.asked if g.kind == "depth"]
    presence = {g.label: {v: {u.label for u in _build(spec, RecordingPicker(depths={g.label: v}), height, width).units}
                          for v in g.choices} for g in depth_genes}
    out = []
    for unit in deepest.units:
        genes = tuple(g for owner, g in deepest.asked if owner == unit.label and g.kind == "arch")
        variants = tuple((values, _build(spec, RecordingPicker(values=dict(zip((g.label for g in genes), values))),
                                         height, width))
                         for values in itertools.product(*(g.choices for g in genes)))
        deciding = [g for g in depth_genes if not all(unit.label in labels for labels in presence[g.label].values())]
        if len(deciding) > 1:
            raise ValueError(f"unit {unit.label!r}: its existence depends on several depth genes "
                             f"({[g.label for g in deciding]}), which expected costs cannot factor")
        depth = deciding[0] if deciding else None
        present = tuple(v for v in depth.choices if unit.label in presence[depth.label][v]) if depth else ()
        out.append(UnitChoices(unit, genes, variants, depth, present))
    return tuple(out)


def space_units(spec: SpaceSpec, height: int, width: int) -> list[tuple[Unit, Plan]]:
    """Every distinct latency unit any genome of the space can contain, with a plan that holds it.

    Each unit of the deepest network is built with every combination of the shape genes asked
    inside it (bit widths do not change a unit); the other genes stay at their largest choice.
    """
    seen: dict[str, tuple[Unit, Plan]] = {}
    for choices in unit_choices(spec, height, width):
        for _, plan in choices.variants:
            variant = plan.unit(choices.unit.label)
            seen.setdefault(variant.key, (variant, plan))
    return list(seen.values())

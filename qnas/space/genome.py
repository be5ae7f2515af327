"""Genomes as plain values and the search space that samples, mutates and validates them.

A genome is a flat mapping from labels (``s2.b1.k``, ``s2.b1.pw1.wbits``, ``s2.depth``) to
integers. Only genes that exist in the described network are present: a stage of depth ``d``
has genes for blocks ``b0 .. b(d-1)`` and none beyond, so two genomes describing the same
network are equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qnas.errors import GenomeError
from qnas.space.spec import SpaceSpec

__all__ = ["Genome", "Gene", "SearchSpace", "fixed_layer_names", "block_layer_names"]

BLOCK_CONVS = ("pw1", "dw", "pw2")


def fixed_layer_names(spec: SpaceSpec) -> dict[str, list[str]]:
    """Quantized layers outside the MBConv stages, grouped by where they sit."""
    del spec  # the layer set does not depend on widths; kept for symmetry with block_layer_names
    return {
        "stem": ["stem.conv", "stem.ds1.dw", "stem.ds1.pw", "stem.ds2.dw", "stem.ds2.pw"],
        "highres": ["hr.dw", "hr.pw"],
        "head": ["head.ds1.dw", "head.ds1.pw", "head.ds2.dw", "head.ds2.pw"],
    }


def block_layer_names(stage: int, block: int) -> list[str]:
    """Quantized convs of MBConv block ``block`` (0-based) of stage ``stage`` (1-based)."""
    return [f"s{stage}.b{block}.{conv}" for conv in BLOCK_CONVS]


@dataclass(frozen=True)
class Gene:
    label: str
    choices: tuple[int, ...]


class Genome(Mapping[str, int]):
    """An immutable, hashable mapping label -> value; equal genomes describe the same network."""

    __slots__ = ("_genes", "_hash")

    def __init__(self, genes: Mapping[str, int]) -> None:
        items = tuple(sorted((str(k), int(v)) for k, v in genes.items()))
        object.__setattr__(self, "_genes", dict(items))
        object.__setattr__(self, "_hash", hash(items))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Genome is immutable")

    def __getitem__(self, label: str) -> int:
        return self._genes[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._genes)

    def __len__(self) -> int:
        return len(self._genes)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Genome):
            return self._hash == other._hash and self._genes == other._genes
        return NotImplemented

    def __repr__(self) -> str:
        return f"Genome({len(self)} genes, hash={self._hash & 0xFFFFFFFF:08x})"

    def with_genes(self, changes: Mapping[str, int]) -> Genome:
        """Unvalidated copy with some genes replaced (validate it with ``SearchSpace.validate``)."""
        return Genome({**self._genes, **changes})


_STAGE_LABEL = re.compile(r"^s(\d+)\.(depth|b(\d+)\..+)$")


class SearchSpace:
    """The set of valid genomes for a ``SpaceSpec``; all randomness comes from the caller's rng."""

    def __init__(self, spec: SpaceSpec) -> None:
        self.spec = spec
        self._fixed_genes: list[Gene] = []
        bits = spec.bits
        for names in fixed_layer_names(spec).values():
            for name in names:
                self._fixed_genes.append(Gene(f"{name}.wbits", bits))
                if name != "stem.conv":  # the stem conv reads the network input (fixed bits)
                    self._fixed_genes.append(Gene(f"{name}.abits", bits))

    # -- the gene table -------------------------------------------------------------------
    def block_genes(self, stage: int, block: int) -> list[Gene]:
        spec = self.spec
        genes = [Gene(f"s{stage}.b{block}.k", spec.kernels), Gene(f"s{stage}.b{block}.e", spec.expands)]
        for name in block_layer_names(stage, block):
            genes += [Gene(f"{name}.wbits", spec.bits), Gene(f"{name}.abits", spec.bits)]
        return genes

    def genes(self, depths: Mapping[int, int] | None = None) -> list[Gene]:
        """Genes in canonical order, for the given depth per stage (default: maximum depth)."""
        stem = [g for g in self._fixed_genes if g.label.startswith("stem.")]
        rest = [g for g in self._fixed_genes if not g.label.startswith("stem.")]
        out = list(stem)
        for stage in range(1, self.spec.num_stages + 1):
            depth = self.spec.max_depth if depths is None else depths[stage]
            out.append(Gene(f"s{stage}.depth", self.spec.depths))
            for block in range(depth):
                out += self.block_genes(stage, block)
        return out + rest

    def canonical_order(self, genome: Genome) -> list[str]:
        return [g.label for g in self.genes(self.depths(genome))]

    def depths(self, genome: Mapping[str, int]) -> dict[int, int]:
        return {s: int(genome[f"s{s}.depth"]) for s in range(1, self.spec.num_stages + 1)}

    # -- validation -------------------------------------------------------------------------
    def validate(self, genes: Mapping[str, object]) -> Genome:
        """Check ``genes`` against the space and return it as a Genome; GenomeError names the offender."""
        all_labels = {g.label: g for g in self.genes()}
        for label in genes:
            if label not in all_labels:
                raise GenomeError(f"unknown genome label {label!r}; {self._label_hint(label)}")
        depths: dict[int, int] = {}
        for stage in range(1, self.spec.num_stages + 1):
            label = f"s{stage}.depth"
            if label not in genes:
                raise GenomeError(f"missing genome label {label!r}")
            depths[stage] = self._checked_value(all_labels[label], genes[label])
        expected = self.genes(depths)
        expected_labels = {g.label for g in expected}
        for label in genes:
            if label not in expected_labels:
                stage = _STAGE_LABEL.match(label)
                raise GenomeError(
                    f"genome label {label!r} describes a block beyond s{stage.group(1)}.depth="
                    f"{depths[int(stage.group(1))]}; remove it or raise the depth"
                )
        values = {}
        for gene in expected:
            if gene.label not in genes:
                raise GenomeError(f"missing genome label {gene.label!r}")
            values[gene.label] = self._checked_value(gene, genes[gene.label])
        return Genome(values)

    @staticmethod
    def _checked_value(gene: Gene, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in gene.choices:
            raise GenomeError(f"{gene.label}: {value!r} is not allowed; allowed: {list(gene.choices)}")
        return int(value)

    def _label_hint(self, label: str) -> str:
        if label.endswith(("wbits", "abits")) and label.startswith("classifier"):
            return "the classifier's bit widths are fixed by the config (space.classifier_wbits/abits)"
        if label == "stem.conv.abits":
            return "the stem conv reads the network input, whose bit width is space.input_bits"
        return "labels look like 's1.depth', 's2.b0.k', 's2.b0.e', 's2.b0.pw1.wbits', 'hr.dw.abits'"

    # -- construction -----------------------------------------------------------------------
    def uniform(self, bits: int, kernel: int, expand: int, depth: int) -> Genome:
        """Every stage at ``depth``, every block ``(kernel, expand)``, every layer at ``bits``."""
        depths = {s: depth for s in range(1, self.spec.num_stages + 1)}
        values = {}
        for gene in self.genes(depths):
            suffix = gene.label.rsplit(".", 1)[1]
            values[gene.label] = {"depth": depth, "k": kernel, "e": expand}.get(suffix, bits)
        return self.validate(values)

    def largest(self) -> Genome:
        s = self.spec
        return self.uniform(max(s.bits), max(s.kernels), max(s.expands), max(s.depths))

    def smallest(self) -> Genome:
        s = self.spec
        return self.uniform(min(s.bits), min(s.kernels), min(s.expands), min(s.depths))

    def sample(self, rng: np.random.Generator, depths: Sequence[int] | None = None) -> Genome:
        """A uniformly random genome: each gene drawn independently from its choices.

        ``depths`` restricts the stage depths (a progressive-shrinking phase); default: all.
        """
        allowed = self.spec.depths if depths is None else tuple(depths)
        if not allowed or not set(allowed) <= set(self.spec.depths):
            raise GenomeError(f"depths {list(allowed)} must be a non-empty subset of {list(self.spec.depths)}")
        values: dict[str, int] = {}
        chosen = {s: int(rng.choice(allowed)) for s in range(1, self.spec.num_stages + 1)}
        for gene in self.genes(chosen):
            if gene.label.endswith(".depth"):
                values[gene.label] = chosen[int(gene.label[1:].split(".")[0])]
            else:
                values[gene.label] = int(rng.choice(gene.choices))
        return Genome(values)

    def mutate(self, genome: Genome, rng: np.random.Generator, p: float) -> Genome:
        """Resample each gene with probability ``p``; blocks that become active get fresh genes."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mutation probability must be in [0, 1], got {p}")
        values = dict(genome)
        for gene in self.genes(self.depths(genome)):
            if rng.random() < p:
                values[gene.label] = int(rng.choice(gene.choices))
        return self._complete(values, rng)

    def crossover(self, genome: Genome, other: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover: each gene from either parent with equal probability."""
        values: dict[str, int] = {}
        for gene in self.genes():  # union of both parents' genes in canonical order
            present = [g[gene.label] for g in (genome, other) if gene.label in g]
            if len(present) == 2:
                values[gene.label] = present[int(rng.integers(2))]
            elif present:
                values[gene.label] = present[0]
        return self._complete(values, rng)

    def _complete(self, values: dict[str, int], rng: np.random.Generator) -> Genome:
        """Drop genes of inactive blocks and sample the missing genes of active ones."""
        depths = self.depths(values)
        out = {}
        for gene in self.genes(depths):
            out[gene.label] = values[gene.label] if gene.label in values else int(rng.choice(gene.choices))
        return Genome(out)

    def size(self) -> int:
        """Number of distinct genomes in the space (as a Python int; it is huge)."""
        spec = self.spec
        per_block = 1
        for gene in self.block_genes(1, 0):
            per_block *= len(gene.choices)
        per_stage = sum(per_block**d for d in spec.depths)
        fixed = 1
        for gene in self._fixed_genes:
            fixed *= len(gene.choices)
        return fixed * per_stage**spec.num_stages

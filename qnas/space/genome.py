"""Genomes as plain values and the search space that samples, mutates and validates them.

A genome is a flat mapping from labels (``s2.b1.k``, ``s2.b1.pw1.wbits``, ``s2.depth``) to
integers. The labels, their choices and their order are the genes the network's plan builder
asks for (``qnas.space.networks.gene_table``); only genes that exist in the described network are
present: a stage of depth ``d`` asks for blocks ``b0 .. b(d-1)`` and none beyond, so two genomes
describing the same network are equal.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from qnas.errors import GenomeError
from qnas.space.networks import gene_table, network_plan, NOMINAL_HW
from qnas.space.plan import Gene
from qnas.space.spec import SpaceSpec

__all__ = ["Genome", "Gene", "SearchSpace"]


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

    def __copy__(self) -> Genome:
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> Genome:
        return self

    def __reduce__(self) -> tuple:
        return (Genome, (self._genes,))

    def with_genes(self, changes: Mapping[str, int]) -> Genome:
        """Unvalidated copy with some genes replaced (validate it with ``SearchSpace.validate``)."""
        return Genome({**self._genes, **changes})


class SearchSpace:
    """The set of valid genomes for a ``SpaceSpec``; all randomness comes from the caller's rng."""

    def __init__(self, spec: SpaceSpec, pins: Mapping[str, int] | None = None) -> None:
        self.spec = spec
        self.pins: dict[str, int] = dict(pins or {})

    def pinned(self, values: Mapping[str, int]) -> SearchSpace:
        """This space with each gene named in ``values`` held at that value (its only choice): a search of
        the pinned space varies the other genes alone. Every pinned value must be one of the gene's choices."""
        genes = {g.label: g for g in self.genes()}
        for label, value in values.items():
            if label not in genes:
                raise GenomeError(f"cannot pin {label!r}: not a gene of this space; {self._label_hint(label)}")
            self._checked_value(genes[label], value)
        return SearchSpace(self.spec, {**self.pins, **{k: int(v) for k, v in values.items()}})

    def architecture(self, genome: Mapping[str, int]) -> dict[str, int]:
        """The genome's shape genes (every gene but the bit widths): what ``pinned`` holds for a bits-only search."""
        kinds = {g.label: g.kind for g in self.genes(self.depths(genome))}
        return {label: int(v) for label, v in genome.items() if kinds.get(label) != "bits"}

    # -- the gene table -------------------------------------------------------------------------
    def genes(self, depths: Mapping[str, int] | None = None) -> list[Gene]:
        """Genes in canonical order for the given depth genes (default: each at its largest choice); a
        pinned gene has its pinned value as its only choice."""
        if depths is None and self.pins:  # the largest depths this space allows
            depths = {g.label: max(g.choices) for g in self.depth_genes()}
        return self._with_pins(gene_table(self.spec, depths))

    def _with_pins(self, genes: Sequence[Gene]) -> list[Gene]:
        """``genes`` with each pinned gene's choices narrowed to its pinned value."""
        return [replace(g, choices=(self.pins[g.label],)) if g.label in self.pins else g for g in genes]

    def depth_genes(self) -> list[Gene]:
        """The genes that decide which other genes exist, in canonical order."""
        return self._with_pins([g for g in gene_table(self.spec, None) if g.kind == "depth"])

    def canonical_order(self, genome: Genome) -> list[str]:
        return [g.label for g in self.genes(self.depths(genome))]

    def depths(self, genome: Mapping[str, int]) -> dict[str, int]:
        """The genome's depth genes, by label."""
        return {g.label: int(genome[g.label]) for g in self.depth_genes()}

    # -- validation -------------------------------------------------------------------------------
    def validate(self, genes: Mapping[str, object]) -> Genome:
        """Check ``genes`` against the space and return it as a Genome; GenomeError names the offender."""
        all_labels = {g.label: g for g in self.genes()}
        for label in genes:
            if not isinstance(label, str):
                raise GenomeError(f"genome label {label!r} is not a label; labels are text such as 's1.depth'")
            if label not in all_labels:
                raise GenomeError(f"unknown genome label {label!r}; {self._label_hint(label)}")
        depths: dict[str, int] = {}
        for gene in self.depth_genes():
            if gene.label not in genes:
                raise GenomeError(f"missing genome label {gene.label!r}")
            depths[gene.label] = self._checked_value(gene, genes[gene.label])
        expected = self.genes(depths)
        expected_labels = {g.label for g in expected}
        for label in genes:
            if label not in expected_labels:
                raise GenomeError(f"genome label {label!r} describes a block beyond {self._limiting(label, depths)}; "
                                  "remove it or raise the depth")
        values = {}
        for gene in expected:
            if gene.label in genes:
                values[gene.label] = self._checked_value(gene, genes[gene.label])
            elif gene.default is not None:  # a gene newer than the genome: what the genome described
                values[gene.label] = gene.default
            else:
                raise GenomeError(f"missing genome label {gene.label!r}")
        return Genome(values)

    def _limiting(self, label: str, depths: dict[str, int]) -> str:
        """The depth gene whose value leaves ``label`` out ('s1.depth=3')."""
        for gene in self.depth_genes():
            deeper = {**depths, gene.label: max(gene.choices)}
            if label in {g.label for g in self.genes(deeper)}:
                return f"{gene.label}={depths[gene.label]}"
        return "the genome's depths"

    @staticmethod
    def _checked_value(gene: Gene, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in gene.choices:
            raise GenomeError(f"{gene.label}: {value!r} is not allowed; allowed: {list(gene.choices)}")
        return int(value)

    def _label_hint(self, label: str) -> str:
        conv, _, suffix = label.rpartition(".")
        if suffix in ("wbits", "abits"):
            convs = {op.label: op for op in network_plan(self.spec, self.largest(), *NOMINAL_HW).convs()}
            if conv in convs:
                kind = "weight" if suffix == "wbits" else "input"
                value = convs[conv].wbits if suffix == "wbits" else convs[conv].abits
                return f"the {kind} bit width of {conv} is fixed by the config ({value})"
        kinds: dict[str, str] = {}
        for gene in self.genes():
            kinds.setdefault(gene.kind if gene.kind != "arch" else gene.label.rpartition(".")[2], gene.label)
        return "labels look like " + ", ".join(repr(v) for v in kinds.values())

    # -- construction -----------------------------------------------------------------------------
    def _at(self, pick_depth, pick) -> Genome:
        """The genome whose depth genes take ``pick_depth(gene)`` and every other gene ``pick(gene)``."""
        depths = {g.label: pick_depth(g) for g in self.depth_genes()}
        return self.validate({g.label: depths[g.label] if g.kind == "depth" else pick(g)
                              for g in self.genes(depths)})

    def uniform(self, bits: int, kernel: int, expand: int, depth: int, others: str = "default") -> Genome:
        """Every stage at ``depth``, every block ``(kernel, expand)``, every layer at ``bits``; any other
        shape gene (zoom, head branches) at its default (the network older genomes describe; without one, its
        smallest choice: the reference architecture's), or with ``others`` 'largest' / 'smallest' at the
        value of the largest / smallest network."""
        named = {"k": kernel, "e": expand}

        def pick(gene: Gene) -> int:
            if gene.kind == "bits":
                return bits
            fallback = {"largest": gene.largest, "smallest": gene.smallest}.get(
                others, gene.default if gene.default is not None else min(gene.choices))
            return named.get(gene.label.rpartition(".")[2], fallback)

        return self._at(lambda g: depth, pick)

    def largest(self) -> Genome:
        """Every gene at the value of the most computation."""
        return self._at(lambda g: g.largest, lambda g: g.largest)

    def smallest(self) -> Genome:
        """Every gene at the value of the least computation."""
        return self._at(lambda g: g.smallest, lambda g: g.smallest)

    def sample(self, rng: np.random.Generator, depths: Sequence[int] | None = None) -> Genome:
        """A uniformly random genome: each gene drawn independently from its choices.

        ``depths`` restricts the depth genes (a progressive-shrinking phase); default: all.
        """
        values: dict[str, int] = {}
        chosen: dict[str, int] = {}
        for gene in self.depth_genes():
            allowed = gene.choices if depths is None else tuple(depths)
            if not allowed or not set(allowed) <= set(gene.choices):
                raise GenomeError(f"depths {list(allowed)} must be a non-empty subset of {list(gene.choices)}")
            chosen[gene.label] = int(rng.choice(allowed))
        for gene in self.genes(chosen):
            values[gene.label] = chosen[gene.label] if gene.kind == "depth" else int(rng.choice(gene.choices))
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
        depth_genes = self.depth_genes()
        total = 0
        for values in itertools.product(*(g.choices for g in depth_genes)):
            count = 1
            for gene in self.genes(dict(zip((g.label for g in depth_genes), values))):
                if gene.kind != "depth":
                    count *= len(gene.choices)
            total += count
        return total

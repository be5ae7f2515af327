"""The network plan: for a space and a genome, the ordered operations of the network (no torch).

A plan is the one description of a network that every consumer reads: the genome's labels come
from the genes a plan builder asks for; MACs, parameters and BitOps are sums over its convs; the
latency table's units are groups of its operations; the supernet runs it op by op (``forward``
interprets the plan), ``freeze`` slices each conv's weights by its geometry; every ONNX writer
walks it. Nothing downstream re-derives a shape, a padding or a reader.

Operations name their output tensor by their label and the tensors they read by the labels of
their producers. Geometry follows torch's conventions: ``out = (in + 2 * padding - dilation *
(kernel - 1) - 1) // stride + 1``.

A plan builder (registered in ``qnas.space.networks``) writes a plan with a ``PlanBuilder``, whose
``pick`` answers every gene it asks for from a genome, or records the gene table while answering
with defaults (``RecordingPicker``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from qnas.errors import GenomeError

__all__ = [
    "Op", "Input", "Conv", "Add", "Resize", "Concat", "Output", "Unit", "Plan", "PlanBuilder", "Gene", "Picker",
    "GenomePicker", "RecordingPicker", "UnitShape", "conv_out_size", "same_padding",
]


def same_padding(kernel: int, dilation: int = 1) -> int:
    """The padding that keeps the resolution of a stride-1 conv ('same'): ``dilation * (kernel // 2)``."""
    return dilation * (kernel // 2)


def conv_out_size(size: int, kernel: int, stride: int, padding: int | None = None, dilation: int = 1) -> int:
    """Output length of a conv (torch's formula); ``padding`` defaults to ``same_padding``."""
    pad = same_padding(kernel, dilation) if padding is None else padding
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


# -- operations -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Op:
    """One operation: its output tensor has ``channels`` x ``hw``; it belongs to latency unit ``unit``."""

    label: str
    inputs: tuple[str, ...]
    channels: int
    hw: tuple[int, int]
    unit: str = ""


@dataclass(frozen=True, kw_only=True)
class Input(Op):
    """A graph input. In a unit's plan (``Plan.unit_plan``), ``source`` is the operation of the whole
    network that produced it."""

    source: str = ""


@dataclass(frozen=True, kw_only=True)
class Conv(Op):
    """A quantized conv, BatchNorm folded, optional ReLU and 8-bit output quantizer.

    ``signed_input``: the input grid is symmetric (the tensor can be negative). ``out_quant``: the
    output is quantized onto its own 8-bit grid (signed unless ``relu``) because an integer engine
    keeps it as a number (a residual operand, a tensor several convs read). ``wbits`` / ``abits``
    are the genome's bit widths and ``*_choices`` what the space allows this conv (one value when
    fixed); ``kernel_choices`` likewise. ``fixed_clip`` fixes the input quantizer's clip (the
    network input, already 8-bit in [0, 1]).

    ``channel_index``: which input channels of the largest network's conv of this label this conv's input
    holds, in order (empty: the first ``cin``); a depthwise conv's outputs follow its inputs. The head
    reads a subset of the stage outputs when its branches are searched, so its first convs read channels
    that are not a prefix of the largest network's.
    """

    cin: int
    kernel: int
    stride: int = 1
    groups: int = 1
    dilation: int = 1
    padding: int = 0
    in_hw: tuple[int, int]
    relu: bool = True
    batchnorm: bool = True
    bias: bool = False
    signed_input: bool = False
    out_quant: bool = False
    wbits: int
    abits: int
    wbits_choices: tuple[int, ...] = ()
    abits_choices: tuple[int, ...] = ()
    kernel_choices: tuple[int, ...] = ()
    fixed_clip: float | None = None
    channel_index: tuple[int, ...] = ()

    @property
    def cout(self) -> int:
        return self.channels

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.cin == self.cout

    @property
    def searchable(self) -> bool:
        """Whether a gene sets one of its bit widths (the classifier's are fixed)."""
        return len(self.wbits_choices) > 1 or len(self.abits_choices) > 1

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.cout, self.cin // self.groups, self.kernel, self.kernel)

    @property
    def fan_in(self) -> int:
        return (self.cin // self.groups) * self.kernel**2

    @property
    def macs(self) -> int:
        h, w = self.hw
        return h * w * self.cout * self.fan_in

    @property
    def bitops(self) -> int:
        return self.macs * self.wbits * self.abits

    @property
    def params(self) -> int:
        extra = (self.cout if self.bias else 0) + (2 * self.cout if self.batchnorm else 0)
        return self.cout * self.fan_in + extra


@dataclass(frozen=True, kw_only=True)
class Add(Op):
    """Elementwise sum of two real-valued tensors (a residual connection)."""


@dataclass(frozen=True, kw_only=True)
class Resize(Op):
    """Resize to ``hw`` ('nearest' copies values, so it is exact on integer codes; 'bilinear' is not).
    A resize whose ``hw`` is its input's is the identity."""

    mode: str = "nearest"
    in_hw: tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class Concat(Op):
    """Channel concatenation, in ``inputs`` order."""


@dataclass(frozen=True, kw_only=True)
class Output(Op):
    """A graph output, named by its label."""


# -- latency units ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """A group of operations that the latency table measures alone, keyed by its shape.

    ``params`` are the shape's extra parts in key order, e.g. ``(("s", 2), ("k", 5), ("e", 6))``.
    """

    label: str
    kind: str
    in_hw: tuple[int, int]
    cin: int
    cout: int
    params: tuple[tuple[str, int], ...] = ()
    ops: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        h, w = self.in_hw
        return f"{self.kind} {h}x{w} c{self.cin}-{self.cout}" + "".join(f" {n}{v}" for n, v in self.params)

    def param(self, name: str, default: int = 1) -> int:
        return dict(self.params).get(name, default)


# -- the plan ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """The operations of one network in execution order, its latency units and its named taps
    (``aux``: the tensors auxiliary heads read during training)."""

    ops: tuple[Op, ...]
    units: tuple[Unit, ...] = ()
    taps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @cached_property
    def by_label(self) -> dict[str, Op]:
        return {op.label: op for op in self.ops}

    @cached_property
    def readers(self) -> dict[str, tuple[str, ...]]:
        """The labels of the operations that read each tensor, in order."""
        out: dict[str, list[str]] = {op.label: [] for op in self.ops}
        for op in self.ops:
            for src in op.inputs:
                out[src].append(op.label)
        return {k: tuple(v) for k, v in out.items()}

    def op(self, label: str) -> Op:
        return self.by_label[label]

    def convs(self) -> list[Conv]:
        return [op for op in self.ops if isinstance(op, Conv)]

    def grid_reader(self, label: str) -> Conv | None:
        """The conv whose input grid this tensor is written onto: its only reader, followed through
        resizes and concatenations, which copy codes; None if the tensor has no such single reader."""
        readers = self.readers[label]
        if len(readers) != 1:
            return None
        reader = self.by_label[readers[0]]
        if isinstance(reader, Conv):
            return reader
        if isinstance(reader, (Resize, Concat)):
            return self.grid_reader(reader.label)
        return None

    def unit(self, label: str) -> Unit:
        for unit in self.units:
            if unit.label == label:
                return unit
        raise KeyError(label)

    def unit_plan(self, label: str) -> Plan:
        """The unit's operations alone: tensors it reads from outside become inputs (``source`` names
        their producer), and tensors read outside it (or by the network's outputs) become outputs."""
        unit = self.unit(label)
        inside = set(unit.ops)
        ops: list[Op] = []
        for src in dict.fromkeys(s for name in unit.ops for s in self.by_label[name].inputs if s not in inside):
            producer = self.by_label[src]
            ops.append(Input(label=src, inputs=(), channels=producer.channels, hw=producer.hw, unit=label,
                             source=src))
        ops += [self.by_label[name] for name in unit.ops]
        for name in unit.ops:
            op = self.by_label[name]
            if isinstance(op, Output):
                continue
            if any(r not in inside for r in self.readers[name]):
                ops.append(Output(label=f"{name}:out", inputs=(name,), channels=op.channels, hw=op.hw, unit=label))
        return Plan(tuple(ops), (unit,), {})

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)


# -- genes and how a builder asks for them ----------------------------------------------------------------
@dataclass(frozen=True)
class Gene:
    """One gene of the space. ``kind``: 'depth' (sets which later genes exist), 'arch' (a shape
    choice) or 'bits' (a bit width, which does not change the latency table's units).

    ``default``: the value a genome without this gene means (a gene added after policies were written
    defaults to the network those policies described); None: a genome must name it. ``descending``:
    larger values make a smaller network (the zoom of a block), so the largest network takes the
    smallest value.
    """

    label: str
    choices: tuple[int, ...]
    kind: str = "arch"
    default: int | None = None
    descending: bool = False

    @property
    def largest(self) -> int:
        """The value of the largest network (most computation)."""
        return min(self.choices) if self.descending else max(self.choices)

    @property
    def smallest(self) -> int:
        """The value of the smallest network."""
        return max(self.choices) if self.descending else min(self.choices)


class Picker(Protocol):
    """Answers a plan builder's question 'which of its choices does ``gene`` take?'."""

    def __call__(self, gene: Gene) -> int: ...


class GenomePicker:
    """Answers from a genome; ``asked`` records the labels asked, in order."""

    def __init__(self, genome: Mapping[str, int]) -> None:
        self.genome = genome
        self.asked: list[str] = []

    def __call__(self, gene: Gene) -> int:
        self.asked.append(gene.label)
        try:
            return int(self.genome[gene.label])
        except KeyError:
            raise GenomeError(f"missing genome label {gene.label!r}") from None


class RecordingPicker:
    """Records the gene table: depth genes answer from ``depths`` (default: their largest choice),
    ``values`` answers other genes it names, every other gene answers the largest network's value."""

    def __init__(self, depths: Mapping[str, int] | None = None, values: Mapping[str, int] | None = None) -> None:
        self.depths = dict(depths or {})
        self.values = dict(values or {})
        self.genes: list[Gene] = []

    def __call__(self, gene: Gene) -> int:
        self.genes.append(gene)
        if gene.kind == "depth":
            return int(self.depths.get(gene.label, gene.largest))
        return int(self.values.get(gene.label, gene.largest))


@dataclass
class UnitShape:
    """The extra parts of a unit's key, set by the builder inside ``PlanBuilder.unit``; ``cin`` replaces the
    input channels given when the unit was opened (a unit whose genes decide how many it reads)."""

    params: Sequence[tuple[str, int]] = ()
    cin: int | None = None


class PlanBuilder:
    """What a plan builder writes with: operations appended in execution order, genes asked of ``pick``.

    Inside ``with builder.unit(...)`` every operation (and every gene asked) belongs to that unit.
    """

    def __init__(self, pick: Picker, height: int, width: int) -> None:
        self.pick = pick
        self.height, self.width = height, width
        self.ops: list[Op] = []
        self.units: list[Unit] = []
        self.taps: dict[str, tuple[str, ...]] = {}
        self._by_label: dict[str, Op] = {}
        self._unit: Unit | None = None
        self._unit_ops: list[str] = []
        self.asked: list[tuple[str, Gene]] = []  # (unit label, gene) of every gene asked, in order

    # -- genes ------------------------------------------------------------------------------------------
    def _ask(self, label: str, choices: Sequence[int], kind: str, **extra) -> int:
        gene = Gene(label, tuple(choices), kind, **extra)
        self.asked.append((self._unit_label(), gene))
        return self.pick(gene)

    def choice(self, label: str, choices: Sequence[int], *, default: int | None = None,
               descending: bool = False) -> int:
        """A shape gene (kernel, expand ratio, zoom, ...); ``default`` and ``descending`` as in ``Gene``."""
        if default is not None and default not in choices:
            raise ValueError(f"gene {label!r}: default {default} is not one of {list(choices)}")
        return self._ask(label, choices, "arch", default=default, descending=descending)

    def depth(self, label: str, choices: Sequence[int]) -> int:
        """A gene that decides which later genes exist (a stage's depth)."""
        return self._ask(label, choices, "depth")

    def bits(self, label: str, choices: Sequence[int]) -> int:
        """A bit width."""
        return self._ask(label, choices, "bits")

    # -- units ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def unit(self, label: str, kind: str, in_hw: tuple[int, int], cin: int, cout: int) -> Iterator[UnitShape]:
        """Operations and genes inside belong to this unit; set ``shape.params`` (the key's extra
        parts) inside, once the genes that decide them are known."""
        if self._unit is not None:
            raise ValueError(f"unit {label!r} opened inside unit {self._unit.label!r}")
        shape = UnitShape()
        self._unit, self._unit_ops = Unit(label, kind, tuple(in_hw), cin, cout), []
        try:
            yield shape
        finally:
            unit, self._unit = self._unit, None
        cin = unit.cin if shape.cin is None else shape.cin
        self.units.append(Unit(unit.label, unit.kind, unit.in_hw, cin, unit.cout, tuple(shape.params),
                               tuple(self._unit_ops)))

    # -- operations -------------------------------------------------------------------------------------
    def _add(self, op: Op) -> str:
        if op.label in self._by_label:
            raise ValueError(f"operation label {op.label!r} used twice")
        self.ops.append(op)
        self._by_label[op.label] = op
        if self._unit is not None:
            self._unit_ops.append(op.label)
        return op.label

    def _unit_label(self) -> str:
        return self._unit.label if self._unit is not None else ""

    def tensor(self, label: str) -> Op:
        return self._by_label[label]

    def hw(self, label: str) -> tuple[int, int]:
        return self._by_label[label].hw

    def channels(self, label: str) -> int:
        return self._by_label[label].channels

    def input(self, label: str, channels: int) -> str:
        return self._add(Input(label=label, inputs=(), channels=channels, hw=(self.height, self.width),
                               unit=self._unit_label()))

    def conv(self, label: str, x: str, cout: int, kernel: int, stride: int = 1, *, depthwise: bool = False,
             dilation: int = 1, wbits: int, abits: int, wbits_choices: Sequence[int] = (),
             abits_choices: Sequence[int] = (), kernel_choices: Sequence[int] = (), relu: bool = True,
             signed_input: bool = False, out_quant: bool = False, bias: bool = False, batchnorm: bool = True,
             fixed_clip: float | None = None, channel_index: Sequence[int] = ()) -> str:
        src = self._by_label[x]
        cin = src.channels
        if channel_index and len(channel_index) != cin:
            raise ValueError(f"{label}: a channel index of {len(channel_index)} channels for an input of {cin}")
        if depthwise:
            cout = cin
        padding = same_padding(kernel, dilation)
        hw = tuple(conv_out_size(v, kernel, stride, padding, dilation) for v in src.hw)
        return self._add(Conv(
            label=label, inputs=(x,), channels=cout, hw=hw, unit=self._unit_label(), cin=cin, kernel=kernel,
            stride=stride, groups=cin if depthwise else 1, dilation=dilation, padding=padding, in_hw=src.hw,
            relu=relu, batchnorm=batchnorm, bias=bias, signed_input=signed_input, out_quant=out_quant,
            wbits=wbits, abits=abits, wbits_choices=tuple(wbits_choices) or (wbits,),
            abits_choices=tuple(abits_choices) or (abits,), kernel_choices=tuple(kernel_choices) or (kernel,),
            fixed_clip=fixed_clip, channel_index=tuple(channel_index)))

    def add(self, label: str, a: str, b: str) -> str:
        first = self._by_label[a]
        return self._add(Add(label=label, inputs=(a, b), channels=first.channels, hw=first.hw,
                             unit=self._unit_label()))

    def resize(self, label: str, x: str, hw: tuple[int, int], mode: str) -> str:
        src = self._by_label[x]
        return self._add(Resize(label=label, inputs=(x,), channels=src.channels, hw=tuple(hw), mode=mode,
                                in_hw=src.hw, unit=self._unit_label()))

    def concat(self, label: str, xs: Sequence[str]) -> str:
        srcs = [self._by_label[x] for x in xs]
        if len({s.hw for s in srcs}) != 1:
            raise ValueError(f"{label}: concatenated tensors differ in resolution: {[s.hw for s in srcs]}")
        return self._add(Concat(label=label, inputs=tuple(xs), channels=sum(s.channels for s in srcs),
                                hw=srcs[0].hw, unit=self._unit_label()))

    def output(self, label: str, x: str) -> str:
        src = self._by_label[x]
        return self._add(Output(label=label, inputs=(x,), channels=src.channels, hw=src.hw,
                                unit=self._unit_label()))

    def tap(self, name: str, labels: Sequence[str]) -> None:
        self.taps[name] = tuple(labels)

    def plan(self) -> Plan:
        return Plan(tuple(self.ops), tuple(self.units), dict(self.taps))

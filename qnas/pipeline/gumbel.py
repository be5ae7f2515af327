"""Strategy ``gumbel``: SqueezeNAS's differentiable search on a trained supernet (``qnas.search.gumbel``).

Only the architecture parameters are optimized; the supernet's weights stay as trained. The supernet
was trained for every subnet (sandwich rule, METHOD.md §4), so its shared weights already rank the
subnets; training them further through the relaxed mixture would fit them to the mixture, not to the
discrete subnets that are deployed, and would cost a backward pass through every weight. The
relaxed forward uses batch statistics and leaves the supernet's BatchNorm statistics alone.

Each step: a training batch chosen by (seed, step), Gumbel noise from a generator seeded by (seed, step),
the relaxed forward, cross-entropy plus the budgets' penalties, one Adam step, then the budgets' targets
and pruning. ``gumbel.jsonl`` gets a line per step (temperature, losses, expected costs, the most probable
genome's costs, targets, pruned choices, every gene's probabilities);
``gumbel_state.pt`` (atomic) holds the parameters, the optimizer, the targets and the live
choices every ``checkpoint_every`` steps, so a killed search resumes at its last state and ends where an
uninterrupted one ends. ``probabilities.png`` shows each gene's probabilities over the search.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qnas.cost.expected import ExpectedCost, expected_cost, one_hot
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.pipeline.context import Context
from qnas.pipeline.plots import probability_plot
from qnas.pipeline.progress import SILENT, Reporter
from qnas.search import Candidate, Constraint, SearchSettings
from qnas.search.gumbel import argmax_genome, final_candidates, prune, temperature, update_targets
from qnas.space.genome import Genome
from qnas.space.policy import atomic_write_text
from qnas.supernet.network import Supernet
from qnas.supernet.relaxed import RelaxedSupernet, choice_probabilities, gumbel_weights

__all__ = ["GumbelRun", "gumbel_search", "penalties", "LOG", "STATE"]

LOG = "gumbel.jsonl"
STATE = "gumbel_state.pt"
_KIND = {"bitops": "bitops", "latency_ms": "latency", "memory": "memory"}  # constraint name -> expected cost


@dataclass(frozen=True)
class Penalty:
    """A budget's penalty (``budget`` set, ``scale`` the budget) or the unconstrained cost's (``alpha * cost / scale``)."""

    name: str
    cost: ExpectedCost
    scale: float
    budget: float | None = None


def penalties(ctx: Context, constraints: list[Constraint], settings: SearchSettings,
              table: LatencyTable | None) -> list[Penalty]:
    """One penalty per budget, each scaled by its budget; without budgets, ``search.gumbel.cost`` scaled by
    the largest genome's."""
    spec, hw = ctx.spec, ctx.deploy_hw
    if constraints:
        return [Penalty(c.name, expected_cost(spec, _KIND[c.name], *hw, table), c.budget, c.budget)
                for c in constraints]
    kind = settings.gumbel.cost
    if kind == "latency" and table is None:
        raise QnasError("search.gumbel.cost latency needs a latency table: pass --lut")
    cost = expected_cost(spec, kind, *hw, table)
    return [Penalty(kind, cost, float(cost.value(one_hot(cost.choices, ctx.space.largest()))))]


@dataclass
class GumbelRun:
    """What ``qnas.pipeline.searching`` writes from: the evaluated final candidates (``cache``), the best,
    and notes."""

    cache: dict[Genome, Candidate] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    steps: int = 0
    chosen: Genome | None = None

    def best(self) -> Candidate:
        return max(self.cache.values(), key=lambda c: c.fitness)


def _batch(dataset, seed: int, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch of ``step``: epochs of a permutation seeded by (seed, epoch), cut in order."""
    n = len(dataset)
    per_epoch = max(1, n // size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, 1, epoch)))
    items = [dataset[int(i)] for i in order[index * size:(index + 1) * size]]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])


@contextlib.contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """No gradient for ``module``'s parameters inside (only the architecture parameters learn); each
    parameter's ``requires_grad`` is restored after."""
    learning = {name: param.requires_grad for name, param in module.named_parameters()}
    for param in module.parameters():
        param.requires_grad_(False)
    try:
        yield
    finally:
        for name, param in module.named_parameters():
            param.requires_grad_(learning[name])


def _seed(seed: int, stream: int, index: int) -> int:
    """A generator seed for item ``index`` of ``stream`` (1: batch order per epoch, 2: Gumbel noise per step)."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0] >> 1)


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read_log(path: Path, steps: int) -> list[dict[str, Any]]:
    """The log's lines of steps before ``steps`` (later ones, and a line cut by a kill, are dropped)."""
    if not path.exists():
        if steps:
            raise QnasError(f"{path} is missing but the search's state is at step {steps}; remove {path.parent} to "
                            "start again")
        return []
    lines = []
    for i, raw in enumerate(path.read_bytes().splitlines(keepends=True)):
        if not raw.endswith(b"\n"):
            break
        try:
            entry = json.loads(raw)
            step = int(entry["step"])
        except (ValueError, KeyError, TypeError):
            raise QnasError(f"{path}: line {i + 1} is not a search step; remove {path.parent} to start again") from None
        if step >= steps:
            break
        lines.append(entry)
    if len(lines) != steps:
        raise QnasError(f"{path} holds {len(lines)} steps, its state {steps}; remove {path.parent} to start again")
    return lines


def gumbel_search(ctx: Context, supernet: Supernet, out: Path, constraints: list[Constraint],
                  settings: SearchSettings, evaluator, table: LatencyTable | None, identity: Mapping[str, Any],
                  resume: bool = False, reporter: Reporter = SILENT, writer: bool = True) -> GumbelRun:
    """Run strategy ``gumbel`` in ``out`` and evaluate its final candidates with ``evaluator``."""
    g = settings.gumbel
    space = ctx.space
    state_path, log_path = out / STATE, out / LOG
    if not resume and (state_path.exists() or log_path.exists()):
        raise QnasError(f"{out} already holds a search; pass --resume to continue it, or choose another --out")
    terms = penalties(ctx, constraints, settings, table)
    device = next(supernet.parameters()).device
    costs = [(p, p.cost.map_arrays(lambda a: torch.as_tensor(a, dtype=torch.float32, device=device))) for p in terms]
    relaxed = RelaxedSupernet(supernet)
    genes = relaxed.genes
    theta = {label: torch.zeros(len(choices), device=device, requires_grad=True) for label, choices in genes.items()}
    optimizer = torch.optim.Adam(list(theta.values()), lr=g.lr)
    alive = {label: [True] * len(choices) for label, choices in genes.items()}
    targets = {p.name: 1.0 for p in terms if p.budget is not None}
    who = json.loads(json.dumps({"settings": asdict(settings), "budgets": {c.name: c.budget for c in constraints},
                                 **identity}))
    start = 0
    if resume and state_path.exists():
        try:
            saved = torch.load(state_path, map_location=device, weights_only=True)
            was = json.loads(saved["identity"])
            start = int(saved["step"])
        except Exception:
            raise QnasError(f"{state_path} is damaged (not a search state); remove {out} to start again") from None
        for key in sorted(set(was) | set(who)):
            if was.get(key) != who.get(key):
                raise QnasError(f"{out} holds a search with {key} {was.get(key)!r}, this one has {who.get(key)!r}; "
                                f"resume it with the same {key}, or choose another --out")
        with torch.no_grad():
            for label in theta:
                theta[label].copy_(saved["theta"][label])
        optimizer.load_state_dict(saved["optimizer"])
        alive = {label: [bool(v) for v in saved["alive"][label].tolist()] for label in genes}
        targets = {k: float(v) for k, v in json.loads(saved["targets"]).items()}
    history = _read_log(log_path, start)
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in history))
    dataset = ctx.train_dataset
    size = g.batch_size or ctx.config.train.batch_size
    seed = settings.seed

    def probabilities() -> dict[str, torch.Tensor]:
        return {label: choice_probabilities(t, alive[label]) for label, t in theta.items()}

    def snapshot(step: int) -> dict[str, Any]:
        return {"step": step, "identity": json.dumps(who, sort_keys=True),
                "theta": {k: v.detach().cpu() for k, v in theta.items()}, "optimizer": optimizer.state_dict(),
                "alive": {k: torch.tensor(v) for k, v in alive.items()}, "targets": json.dumps(targets)}

    with _frozen(supernet), reporter.steps("gumbel search") as advance, \
            open(log_path, "a") if writer else open(os.devnull, "w") as log:
        for step in range(start, g.steps):
            tic = time.perf_counter()
            tau = temperature(step, g.steps, g.tau_start, g.tau_end)
            images, labels = _batch(dataset, seed, step, size)
            images, labels = images.to(device), labels.to(device)
            noise = torch.Generator().manual_seed(_seed(seed, 2, step))
            weights = {label: gumbel_weights(t, alive[label], tau, noise) for label, t in theta.items()}
            logits = relaxed(images, weights, alive)
            ce = F.cross_entropy(logits, labels.long(), ignore_index=ctx.ignore_index)
            probs = probabilities()
            expected = {p.name: cost.value(probs) for p, cost in costs}
            loss = ce + sum(g.alpha * (F.relu(expected[p.name] / (targets[p.name] * p.scale) - 1.0)
                                       if p.budget is not None else expected[p.name] / p.scale) for p, _ in costs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                probs = {k: v.cpu().numpy().astype(np.float64) for k, v in probabilities().items()}
            best = argmax_genome(space, probs)
            missed = {c.name: not c.satisfied(best) for c in constraints}
            targets = update_targets(targets, missed, g.budget_step)
            removed = []
            if g.prune_below > 0:
                alive, removed = prune(probs, alive, g.prune_below)
            entry = {"step": step, "tau": round(tau, 5), "loss": float(loss.detach()), "ce": float(ce.detach()),
                     "expected": {k: float(v.detach()) for k, v in expected.items()}, "targets": targets,
                     "argmax": {p.name: float(p.cost.value(one_hot(p.cost.choices, best))) for p in terms},
                     "argmax_meets_budgets": not any(missed.values()),
                     "pruned": [[k, genes[k][i]] for k, i in removed],
                     "live_choices": sum(sum(v) for v in alive.values()),
                     "seconds": round(time.perf_counter() - tic, 4),
                     "probs": {k: [round(float(x), 5) for x in v] for k, v in probs.items()}}
            log.write(json.dumps(entry, separators=(",", ":")) + "\n")
            log.flush()
            history.append(entry)
            if writer and ((step + 1) % g.checkpoint_every == 0 or step + 1 == g.steps):
                os.fsync(log.fileno())  # the log holds every step the state says is done
                _save_state(state_path, snapshot(step + 1))
            advance(f"tau {tau:.2f}  CE {float(ce.detach()):.3f}", step + 1, g.steps)
    with torch.no_grad():
        probs = {k: v.cpu().numpy().astype(np.float64) for k, v in probabilities().items()}
    run = GumbelRun(steps=g.steps)
    genomes, note = final_candidates(space, probs, constraints, np.random.default_rng(seed), g.samples)
    if note:
        run.warnings.append(note)
    run.chosen = genomes[0]
    for genome in genomes:
        run.cache[genome] = Candidate(genome, dict(evaluator(genome)), 0)
    if writer:
        probability_plot(history, genes, out / "probabilities.png")
    return run


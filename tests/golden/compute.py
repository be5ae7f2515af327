"""Golden values of qnas's behaviour: what a refactor must leave unchanged.

``python -m tests.golden.compute record`` writes ``tests/golden/golden.json``; ``test_golden.py``
recomputes every value and compares. The values were first recorded at the commit before the
network-plan refactor (issue 13) and must be reproduced by the code after it:

- costs: MACs / params / BitOps of 50 random genomes per shipped config (and the genomes' hashes,
  so a changed sampler shows as such);
- latency: the latency table's keys per config, and the blocks of those 50 genomes;
- export: for 6 genomes of a supernet with synthetic weights (set from a name-seeded generator, so
  the values do not depend on module order or on the CPU), every export profile's node types in
  order and its outputs on a fixed input; the frozen model's and the supernet's outputs;
- search: the evaluation order and winner of evolution and random search with a fixed seed, with a
  torch-free fitness and with the real supernet evaluator on the synthetic supernet;
- training: ``k`` training steps from one seed (weights by conv label, losses), computed in a
  subprocess whose torch kernels are pinned to AVX2 so that another x86 CPU computes the same bits.

Everything that is not training is exact integer arithmetic or IEEE elementwise operations, which
every CPU computes alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
CONFIGS = ("digits", "digits-full", "cityscapes")
PINNED_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
              "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL_SPEC = dict(stem_channels=(8, 12, 16), stem_strides=(2, 2, 1), stage_channels=(16, 24, 32),
                  highres_channels=16, head_channels=(16, 16))
EXPORT_HW = (48, 64)


def digest(values) -> str:
    """sha256 of an array's bytes (with its dtype and shape) or of a JSON value."""
    if isinstance(values, np.ndarray):
        data = f"{values.dtype}{values.shape}".encode() + np.ascontiguousarray(values).tobytes()
    else:
        data = json.dumps(values, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:20]


def genome_digest(genome) -> str:
    return digest({k: int(v) for k, v in genome.items()})


# -- costs and latency keys (torch-free) ----------------------------------------------------------------
def cost_values() -> dict:
    from qnas.config import load_config
    from qnas.cost import genome_cost
    from qnas.cost.latency import network_blocks, space_blocks
    from qnas.space import SearchSpace

    out = {}
    for name in CONFIGS:
        config = load_config(ROOT / "configs" / f"{name}.yaml")
        space = SearchSpace(config.space)
        hw = (config.deploy.height, config.deploy.width)
        rng = np.random.default_rng(1234)
        genomes = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(48)]
        out[name] = {
            "genomes": [genome_digest(g) for g in genomes],
            "costs": [genome_cost(config.space, g, *hw).as_dict() for g in genomes],
            "table_keys": sorted(b.key for b in space_blocks(config.space, *hw)),
            "network_blocks": [digest([b.key for b in network_blocks(config.space, g, *hw)]) for g in genomes],
        }
    return out


# -- a supernet with synthetic weights --------------------------------------------------------------------
def _values(name: str, shape: tuple, kind: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if kind == "weight":
        fan_in = int(np.prod(shape[1:])) or 1
        return rng.normal(0, 1.5 / np.sqrt(fan_in), shape)
    if kind == "transform":
        n = shape[0]
        return np.eye(n) + rng.normal(0, 0.05, shape)
    if kind == "alpha":
        return rng.uniform(0.5, 3.0, shape)
    if kind == "running_var":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "gamma":
        return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape, p=[0.1, 0.9])
    return rng.normal(0, 0.2, shape)  # running_mean, beta, bias


def named_tensors(supernet) -> dict:
    """Every parameter and BatchNorm buffer of the supernet by '{conv label}:{role}' (aux heads by path)."""
    out = {}
    for label, unit in supernet.units.items():
        for name, t in unit.state_dict(keep_vars=True).items():
            out[f"{label}:{name}"] = t
    for name, t in supernet.aux_heads.state_dict(keep_vars=True).items():
        out[f"aux:{name}"] = t
    return out


def synthetic_supernet(spec):
    import torch

    from qnas.supernet import build_supernet

    torch.manual_seed(0)
    supernet = build_supernet(spec)
    roles = {"weight": "weight", "bias": "beta", "running_mean": "mean", "running_var": "running_var",
             "alpha": "alpha", "clip_ratio": "alpha"}
    with torch.no_grad():
        for name, t in named_tensors(supernet).items():
            last = name.rsplit(".", 1)[1]
            if last == "num_batches_tracked" or name.startswith("aux:"):
                continue
            if ".transforms." in name:
                kind = "transform"
            elif ".bn." in name or ":bn." in name:
                kind = {"weight": "gamma", "bias": "beta"}.get(last, roles.get(last, last))
            else:
                kind = roles.get(last, last)
            if name.startswith("stem.conv:conv.act_quant"):
                continue  # the network input's fixed clip
            t.copy_(torch.from_numpy(_values(name, tuple(t.shape), kind)).to(t.dtype))
    return supernet.eval()


def export_genomes(space) -> list:
    rng = np.random.default_rng(5)
    return [space.largest(), space.smallest(), space.uniform(4, 3, 6, 3)] + [space.sample(rng) for _ in range(3)]


def _run_onnx(fmt: str, model, x: np.ndarray) -> np.ndarray:
    if fmt == "qonnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.util.cleanup import cleanup_model

        wrapper = cleanup_model(ModelWrapper(model))
        return execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[wrapper.graph.output[0].name]
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def canonical_node_types(model) -> list[str]:
    """Node types in a topological order that does not depend on how independent nodes were emitted
    (Kahn's algorithm, ready nodes taken by op type, then by their order in the file)."""
    import heapq

    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}
    deps = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    pending = [len(d) for d in deps]
    ready = [(n.op_type, i) for i, n in enumerate(nodes) if not deps[i]]
    heapq.heapify(ready)
    order = []
    while ready:
        op, i = heapq.heappop(ready)
        order.append(op)
        for j in users.get(i, []):
            pending[j] -= 1
            if not pending[j]:
                heapq.heappush(ready, (nodes[j].op_type, j))
    return order


def graph_digest(model) -> str:
    """The graph's nodes (types, tensor names, attributes) and initializers: equal digests, equal files."""
    from onnx import helper, numpy_helper

    nodes = [[n.op_type, list(n.input), list(n.output), sorted(str(helper.get_attribute_value(a)) for a in n.attribute)]
             for n in model.graph.node]
    inits = sorted((t.name, digest(np.asarray(numpy_helper.to_array(t)))) for t in model.graph.initializer)
    return digest([nodes, inits])


def export_values(qonnx_runs: tuple[int, ...] = tuple(range(6))) -> list:
    """Export values of the 6 genomes; qonnx's Python executor (about 12 s a file) runs ``qonnx_runs`` only."""
    import torch

    from qnas.export.profiles import get_profile
    from qnas.space import SearchSpace, SpaceSpec
    from qnas.train import cut_subnet

    spec = SpaceSpec(**SMALL_SPEC)
    space = SearchSpace(spec)
    supernet = synthetic_supernet(spec)
    x = np.random.default_rng(7).random((1, 3, *EXPORT_HW), dtype=np.float32)
    out = []
    for index, genome in enumerate(export_genomes(space)):
        entry = {"genome": genome_digest(genome)}
        supernet.set_genome(genome)
        subnet = cut_subnet(supernet, genome, None)
        with torch.no_grad():
            entry["supernet"] = digest(supernet(torch.from_numpy(x)).numpy())
            entry["frozen"] = digest(subnet(torch.from_numpy(x)).numpy())
        for fmt in ("qonnx", "ort", "trt", "onnx-fp32"):
            model = get_profile(fmt).export(subnet, *EXPORT_HW)
            entry[fmt] = {"node_types": [n.op_type for n in model.graph.node],
                          "canonical_node_types": canonical_node_types(model), "graph": graph_digest(model)}
            if fmt == "qonnx" and index not in qonnx_runs:
                continue
            y = _run_onnx(fmt, model, x)
            # float convs (onnx-fp32, trt's Q/DQ) sum in an order that depends on the CPU: compared with a tolerance
            entry[fmt]["output"] = digest(y) if fmt not in ("onnx-fp32", "trt") else None
            entry[fmt]["output_values"] = np.round(y.astype(np.float64).ravel()[::97], 4).tolist()
        out.append(entry)
    return out


# -- search -----------------------------------------------------------------------------------------------
def _fake_fitness(genome) -> dict[str, float]:
    score = sum(v for k, v in genome.items() if k.endswith("bits")) / (8.0 * len(genome))
    score += 0.01 * sum(genome[k] for k in genome if k.endswith(".e"))
    score += (zlib.crc32(genome_digest(genome).encode()) % 1000) * 1e-6
    return {"miou": score / 10.0}


def search_values(tmp: Path) -> dict:
    import torch

    from qnas.config import load_config
    from qnas.cost import genome_cost
    from qnas.data import DigitScenes
    from qnas.search import Constraint, Search, SearchSettings
    from qnas.space import SearchSpace, SpaceSpec
    from qnas.train import SupernetEvaluator

    out = {}
    config = load_config(ROOT / "configs" / "digits.yaml")
    space = SearchSpace(config.space)
    hw = (config.deploy.height, config.deploy.width)
    w8 = genome_cost(config.space, space.uniform(8, 3, 6, 3), *hw).bitops
    budget = Constraint("bitops", lambda g: genome_cost(config.space, g, *hw).bitops, 0.5 * w8, "GBitOps", 1e9)
    for strategy in ("evolution", "random"):
        settings = SearchSettings(**{**vars(config.search), "seed": 3, "strategy": strategy})
        search = Search(space, [budget], _fake_fitness, settings, tmp / f"fake-{strategy}")
        history = search.run()
        out[f"fake-{strategy}"] = {"order": digest([genome_digest(c.genome) for c in history]),
                                   "best": genome_digest(search.best().genome)}

    spec = SpaceSpec(**SMALL_SPEC)
    small = SearchSpace(spec)
    supernet = synthetic_supernet(spec)
    val = DigitScenes("val", 4, 32, 32, seed=0)
    loader = [(torch.stack([val[i][0] for i in range(4)]), torch.stack([val[i][1] for i in range(4)]))]
    evaluator = SupernetEvaluator(supernet, None, loader, spec.num_classes, ignore_index=255)
    settings = SearchSettings(population=6, parents=3, mutants=3, crossovers=3, generations=2, seed=11)
    w8s = genome_cost(spec, small.uniform(8, 3, 6, 3), 64, 64).bitops
    small_budget = Constraint("bitops", lambda g: genome_cost(spec, g, 64, 64).bitops, 0.5 * w8s)
    search = Search(small, [small_budget], evaluator, settings, tmp / "real")
    history = search.run()
    out["supernet-evolution"] = {"order": digest([genome_digest(c.genome) for c in history]),
                                 "fitness": [round(c.fitness, 12) for c in history],
                                 "best": genome_digest(search.best().genome)}
    return out


# -- training (run with PINNED_ISA) -----------------------------------------------------------------------
class _Losses:
    def __init__(self, losses: list) -> None:
        self.losses = losses

    def stage_started(self, *args) -> None:
        pass

    def step_done(self, loss: float, lr: float, images_per_s: float) -> None:
        self.losses.append(loss)

    def stage_finished(self, *args) -> None:
        pass


def training_values() -> dict:
    import tempfile

    import torch

    from qnas.config import PhaseConfig, TrainConfig
    from qnas.data import DigitScenes
    from qnas.space import SearchSpace, SpaceSpec
    from qnas.supernet import build_supernet
    from qnas.train import Trainer, supernet_stages

    torch.set_num_threads(1)
    spec = SpaceSpec(**SMALL_SPEC)
    space = SearchSpace(spec)
    data = DigitScenes("train", 16, 32, 32, seed=0)
    cfg = TrainConfig(batch_size=4, warmup_epochs=1, phases=(PhaseConfig("all", 1, 2e-3, (2, 3, 4)),),
                      random_subnets=1, checkpoint_every=1000)
    torch.manual_seed(0)
    supernet = build_supernet(spec)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(supernet, supernet_stages(cfg, space), cfg, data, seed=0, checkpoint_path=Path(tmp) / "c.pt")
        losses = []
        trainer.monitor = _Losses(losses)
        trainer.run()
    weights = {name: digest(t.detach().numpy()) for name, t in sorted(named_tensors(supernet).items())}
    return {"losses": [float(v).hex() for v in losses], "weights": weights, "steps": trainer.position.step,
            "all": digest(sorted(weights.values()))}


def cpu_signature() -> str:
    """The CPU's vendor and the vector extensions that change float kernels (pinning aims to hide them)."""
    import platform

    vendor, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor += " " + line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return vendor + " " + ",".join(f for f in wanted if f in flags)


def pinned_training_values() -> dict:
    """``training_values`` in a fresh interpreter whose torch kernels are pinned to AVX2."""
    import subprocess

    env = {**os.environ, **PINNED_ISA, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.golden.compute", "training"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def record() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        values = {"costs": cost_values(), "export": export_values(), "search": search_values(Path(tmp)),
                  "training": pinned_training_values(), "cpu": cpu_signature()}
    GOLDEN.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        record()
    elif sys.argv[1:] == ["training"]:
        print(json.dumps(training_values()))
    else:
        sys.exit("usage: python -m tests.golden.compute record|training")

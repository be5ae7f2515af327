"""Microbenchmarks of qnas's hot paths (pytest-benchmark).

Run from the repository root:

    python -m pytest benchmarks/test_microbenchmarks.py --benchmark-only -p no:cacheprovider

pyproject's ``testpaths`` is ``tests``, so a plain ``python -m pytest`` never collects this
file: pass its path explicitly. The whole file takes about two minutes on 2 CPU cores.

What is timed (all with the space of ``configs/digits.yaml``):

1. ``test_supernet_train_step``: one QAT training step of one sampled subnet (forward with
   the auxiliary heads, loss, backward, Adam step) through the trainer's own step, batch 16
   at 64x64, 2 torch threads.
2. ``test_subnet_cut_bn_recalibration_eval``: cut a subnet out of a randomly initialised
   supernet (quantizers on), recalibrate its BatchNorm on 4 batches of 16 training scenes,
   evaluate mIoU on 32 validation scenes.
3. ``test_genome_sample_and_cost``: draw a random genome and compute its analytic
   MACs / params / BitOps at the deployment resolution (torch-free).
4. ``test_lut_predict_latency`` vs ``test_measure_network_latency``: predict a genome's INT8
   latency from a latency lookup table (built once per module at 64x128 with few repeats)
   versus exporting and timing that genome's whole INT8 network with onnxruntime.

Torch runs with 2 intra-op threads (OpenMP). On a machine that other processes keep busy,
OpenMP's default spin-waiting makes 2-thread timings swing by an order of magnitude (a
thread waits at every op's barrier for its descheduled partner); ``OMP_WAIT_POLICY=PASSIVE``
in the environment (set before Python starts) makes them stable. The onnxruntime backend
uses 1 thread, the default of ``qnas latency-table``.

Every benchmark also checks its result (finite loss, mIoU in [0, 1], positive cost and
latency); none asserts a time. Results: ``benchmarks/results/microbenchmarks.md``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from qnas.config import load_config
from qnas.pipeline import Context, new_supernet
from qnas.cost import genome_cost
from qnas.cost.latency import LatencyTable, network_blocks
from qnas.export.latency import build_table, get_backend, measure_network
from qnas.space import SearchSpace
from qnas.train.schedule import Stage
from qnas.train.subnet import evaluate_subnet
from qnas.train.trainer import Trainer

CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "digits.yaml"
TORCH_THREADS = 2
ORT_THREADS = 1  # the default of `qnas latency-table --threads`
BATCH_SIZE = 16
TRAIN_HW = (64, 64)
VAL_SCENES = 32
BN_BATCHES = 4
LUT_HW = (64, 128)
LUT_WARMUP = 2
LUT_REPEATS = 5


# -- shared setup ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def torch_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def config():
    """The digits config, shrunk so that building the data takes a second or two."""
    base = load_config(CONFIG_PATH)
    data = dataclasses.replace(base.data, train_size=TRAIN_HW, eval_size=TRAIN_HW,
                               train_scenes=BATCH_SIZE * BN_BATCHES, val_scenes=VAL_SCENES)
    train = dataclasses.replace(base.train, batch_size=BATCH_SIZE, bn_calib_batches=BN_BATCHES)
    return dataclasses.replace(base, data=data, train=train)


@pytest.fixture(scope="module")
def space(config):
    return SearchSpace(config.space)


@pytest.fixture(scope="module")
def genome(space):
    """One fixed random genome (seed 0), shared by the benchmarks that need a subnet."""
    return space.sample(np.random.default_rng(0))


# -- 1. one supernet training step ----------------------------------------------------------------
def test_supernet_train_step(benchmark, config, genome, tmp_path):
    torch.manual_seed(0)
    supernet = new_supernet(config)
    stage = Stage("bench-qat", epochs=1, lr=config.train.finetune_lr, quantize=True, genome=genome)
    h, w = TRAIN_HW
    images = torch.rand(BATCH_SIZE, 3, h, w)
    labels = torch.randint(0, config.space.num_classes, (BATCH_SIZE, h, w))
    # Only the trainer's step is used, which writes no checkpoint.
    trainer = Trainer(supernet, [stage], config.train, dataset=Context(config).train_dataset, seed=0,
                      checkpoint_path=tmp_path / "unused.pt")
    supernet.set_quantization(True)
    classifier = supernet.unit("classifier")
    before = {k: v.clone() for k, v in classifier.state_dict().items()}

    def step() -> float:
        # Trainer.step: set LR, set the genome, forward_train, CE + aux losses, backward, Adam step.
        return trainer.step(stage, images, labels, stage.lr)

    loss = benchmark.pedantic(step, rounds=8, iterations=1, warmup_rounds=1)
    assert math.isfinite(loss) and loss > 0
    after = classifier.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    benchmark.extra_info["loss"] = loss


# -- 2. subnet cut + BN recalibration + evaluation ------------------------------------------------
@pytest.fixture(scope="module")
def eval_data(config):
    """(BN batches from training scenes, loader over validation scenes), built once."""
    ctx = Context(config)
    calib = ctx.bn_images
    loader = ctx.loader("val", batch_size=BATCH_SIZE)
    assert len(calib) == BN_BATCHES and len(loader.dataset) == VAL_SCENES
    return calib, loader


def test_subnet_cut_bn_recalibration_eval(benchmark, config, genome, eval_data):
    calib, loader = eval_data
    torch.manual_seed(0)
    supernet = new_supernet(config)
    supernet.set_quantization(True)
    supernet.eval()

    def cut_and_evaluate():
        return evaluate_subnet(supernet, genome, calib, loader, config.space.num_classes)

    result = benchmark.pedantic(cut_and_evaluate, rounds=5, iterations=1, warmup_rounds=1)
    assert 0.0 <= result["miou"] <= 1.0
    assert 0.0 <= result["pixel_acc"] <= 1.0
    assert len(result["per_class_iou"]) == config.space.num_classes
    benchmark.extra_info["miou"] = result["miou"]


# -- 3. genome sampling + analytic cost -----------------------------------------------------------
def test_genome_sample_and_cost(benchmark, config, space):
    rng = np.random.default_rng(0)
    h, w = config.deploy.height, config.deploy.width

    def sample_and_cost():
        g = space.sample(rng)
        return g, genome_cost(config.space, g, h, w)

    g, cost = benchmark(sample_and_cost)
    assert space.validate(g) == g
    assert cost.macs > 0 and cost.params > 0
    assert 0 < cost.bitops_searchable <= cost.bitops
    # BitOps are MACs x weight bits x activation bits, each between 4 and 8 bits here.
    assert min(config.space.bits) ** 2 * cost.macs <= cost.bitops <= 8 * 8 * cost.macs


# -- 4. latency: LUT lookup vs whole-network measurement ------------------------------------------
@pytest.fixture(scope="module")
def ort_backend():
    return get_backend("ort-cpu", ORT_THREADS)


@pytest.fixture(scope="module")
def latency_table(config, ort_backend, tmp_path_factory) -> LatencyTable:
    """Every block of the space measured at 64x128 (few repeats: for timing the lookup only)."""
    out = tmp_path_factory.mktemp("lut") / "lut.yaml"
    table = build_table(config.space, LUT_HW, ort_backend, out, warmup=LUT_WARMUP, repeats=LUT_REPEATS)
    assert not table.missing(config.space)
    assert LatencyTable.read(out).entries == table.entries
    return table


def test_lut_predict_latency(benchmark, config, genome, latency_table):
    predicted = benchmark(latency_table.predict, config.space, genome)
    assert predicted > 0
    assert predicted == pytest.approx(sum(latency_table.entries[b.key] for b in network_blocks(config.space, genome, *LUT_HW)))
    benchmark.extra_info["predicted_ms"] = predicted


def test_measure_network_latency(benchmark, config, genome, ort_backend, latency_table):
    method = latency_table.method or {}

    def measure() -> float:
        return measure_network(config.space, genome, latency_table.resolution, ort_backend,
                               int(method["warmup"]), int(method["repeats"]))

    measured = benchmark.pedantic(measure, rounds=3, iterations=1, warmup_rounds=0)
    assert measured > 0
    predicted = latency_table.predict(config.space, genome)
    benchmark.extra_info["measured_ms"] = measured
    benchmark.extra_info["predicted_ms"] = predicted


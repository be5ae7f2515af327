"""The trainer: it learns, it resumes exactly, and ranks under DDP stay identical."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from qnas.config import TrainConfig
from qnas.data import DigitScenes
from qnas.errors import CheckpointError
from qnas.space import SpaceSpec
from qnas.supernet import build_supernet
from qnas.train import Trainer, batch_indices, distill_loss, load_checkpoint, supernet_stages


def _trainer(spec: SpaceSpec, cfg: TrainConfig, data: DigitScenes, path: Path, monitor=None) -> Trainer:
    torch.manual_seed(0)
    supernet = build_supernet(spec)
    return Trainer(supernet, supernet_stages(cfg, supernet.space), cfg, data, seed=3, checkpoint_path=path,
                   monitor=monitor)


class _StopAfter:
    """A monitor that interrupts training after ``n`` steps, like a kill."""

    def __init__(self, n: int) -> None:
        self.n = n

    def stage_started(self, *args: object) -> None:
        pass

    def stage_finished(self, *args: object) -> None:
        pass

    def step_done(self, *args: object) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def _equal_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_interrupted_then_resumed_equals_uninterrupted(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                      tiny_scenes: DigitScenes, tmp_path: Path) -> None:
    whole = _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "whole.pt")
    end = whole.run()
    assert end.stage == 3 and end.step == 3 * len(tiny_scenes) // tiny_train.batch_size

    cut = _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "cut.pt", monitor=_StopAfter(9))
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    saved = load_checkpoint(tmp_path / "cut.pt")
    assert saved["position"]["step"] == 8 and not saved["finished"]  # checkpoint_every = 2: step 9 is lost
    resumed = _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "cut.pt")
    assert not _equal_weights(resumed.supernet, whole.supernet)
    resumed.run(resume=True)
    assert resumed.position == end
    assert _equal_weights(resumed.supernet, whole.supernet)
    assert load_checkpoint(tmp_path / "cut.pt")["finished"]


def test_training_changes_weights_and_learns_clips(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                   tiny_scenes: DigitScenes, tmp_path: Path) -> None:
    trainer = _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "c.pt")
    before = {k: v.clone() for k, v in trainer.supernet.state_dict().items()}
    trainer.run()
    after = trainer.supernet.state_dict()
    assert not torch.equal(before["layers.stem.ds1.pw.conv.weight"], after["layers.stem.ds1.pw.conv.weight"])
    alpha = "layers.s1.b1.pw1.conv.act_quant.alpha"
    assert not torch.equal(before[alpha], after[alpha])  # PACT clips learn during QAT
    # 5x5 -> 3x3 kernel transforms are trained by the subnets that use kernel 3
    assert not torch.equal(before["layers.s1.b0.dw.conv.transforms.5to3"],
                           after["layers.s1.b0.dw.conv.transforms.5to3"])


def test_resume_refuses_a_checkpoint_of_another_schedule(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                         tiny_scenes: DigitScenes, tmp_path: Path) -> None:
    from dataclasses import replace

    _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "c.pt").run()
    other = replace(tiny_train, warmup_epochs=0)
    with pytest.raises(CheckpointError, match="stages"):
        _trainer(small_spec, other, tiny_scenes, tmp_path / "c.pt").run(resume=True)


def test_batches_shard_across_ranks() -> None:
    one = batch_indices(20, 4, 0, 0, 0)
    r0, r1 = batch_indices(20, 4, 0, 0, 0, 0, 2), batch_indices(20, 4, 0, 0, 0, 1, 2)
    assert len(one) == 5 and len(r0) == len(r1) == 2
    seen = [int(i) for b in r0 + r1 for i in b]
    assert len(seen) == len(set(seen)) == 16
    assert [b.tolist() for b in batch_indices(20, 4, 0, 0, 1)] != [b.tolist() for b in one]


def test_distill_loss_is_zero_for_equal_outputs() -> None:
    x = torch.randn(2, 5, 3, 3)
    assert float(distill_loss(x, x, 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(x, torch.randn(2, 5, 3, 3), 2.0)) > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, spec: SpaceSpec, cfg: TrainConfig, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        data = DigitScenes("train", 24, 32, 32, seed=0)
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        supernet = build_supernet(spec)
        trainer = Trainer(supernet, supernet_stages(cfg, supernet.space), cfg, data, seed=3,
                          checkpoint_path=Path(out) / "ddp.pt")
        trainer.run()
        torch.save(supernet.state_dict(), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_keep_identical_replicas(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                   tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(2, _free_port(), small_spec, tiny_train, str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    trained = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert trained and all(torch.equal(a[k], b[k]) for k in trained)
    assert load_checkpoint(tmp_path / "ddp.pt")["finished"]


def _augmented(spec: SpaceSpec, cfg: TrainConfig, data: DigitScenes, path: Path, monitor=None,
               workers: int = 0) -> Trainer:
    from qnas.config import AugmentConfig
    from qnas.data.augment import Augmentation

    torch.manual_seed(0)
    supernet = build_supernet(spec)
    augment = Augmentation(AugmentConfig(scale=(0.75, 1.5), flip=0.5, jitter=(0.2, 0.2, 0.2, 0.0)), (32, 32), 255)
    return Trainer(supernet, supernet_stages(cfg, supernet.space), cfg, data, seed=3, checkpoint_path=path,
                   monitor=monitor, augment=augment, workers=workers)


def test_augmented_run_read_by_loader_processes_resumes_exactly(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                                 tiny_scenes: DigitScenes, tmp_path: Path) -> None:
    whole = _augmented(small_spec, tiny_train, tiny_scenes, tmp_path / "whole.pt")
    whole.run()
    plain = _trainer(small_spec, tiny_train, tiny_scenes, tmp_path / "plain.pt")
    plain.run()
    assert not _equal_weights(whole.supernet, plain.supernet)  # the augmentation is really applied
    cut = _augmented(small_spec, tiny_train, tiny_scenes, tmp_path / "cut.pt", monitor=_StopAfter(5), workers=2)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    resumed = _augmented(small_spec, tiny_train, tiny_scenes, tmp_path / "cut.pt", workers=2)
    resumed.run(resume=True)
    assert _equal_weights(resumed.supernet, whole.supernet)


class _DtypeProbe:
    """Records the dtype of the stem conv's output at every forward."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seen: list[torch.dtype] = []
        module.register_forward_hook(lambda m, i, o: self.seen.append(o.dtype))


def test_mixed_precision_runs_the_float_stages_only(small_spec: SpaceSpec, tiny_train: TrainConfig,
                                                    tiny_scenes: DigitScenes, tmp_path: Path) -> None:
    from dataclasses import replace

    from qnas.train.schedule import Stage

    cfg = replace(tiny_train, amp="bf16", channels_last=True)
    trainer = _trainer(small_spec, cfg, tiny_scenes, tmp_path / "amp.pt")
    probe = _DtypeProbe(trainer.supernet.layers.stem.ds1.pw.conv)
    images = torch.stack([tiny_scenes[i][0] for i in range(4)])
    labels = torch.stack([tiny_scenes[i][1] for i in range(4)])
    float_stage, qat_stage = trainer.stages[0], trainer.stages[1]
    assert not float_stage.quantize and qat_stage.quantize and isinstance(float_stage, Stage)
    trainer.supernet.set_quantization(False)
    loss = trainer.step(float_stage, images, labels, 1e-3)
    assert set(probe.seen) == {torch.bfloat16} and loss == loss
    probe.seen.clear()
    trainer.supernet.set_quantization(True)
    trainer.step(qat_stage, images, labels, 1e-3)
    assert set(probe.seen) == {torch.float32}  # the quantizers' rounding sees float32
    assert all(p.dtype == torch.float32 for p in trainer.supernet.parameters())
    assert trainer.supernet.layers.stem.ds1.pw.conv.weight.is_contiguous(memory_format=torch.channels_last)


class _BadItem(torch.utils.data.Dataset):
    """Scenes whose item 5 is a broken file."""

    ignore_index = 255

    def __init__(self, scenes: DigitScenes) -> None:
        self.scenes = scenes

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        from qnas.errors import DataError

        if index == 5:
            raise DataError("masks/train/five.png: mask ids 9 are neither a class (0 to 10) nor the ignore index 255")
        return self.scenes[index]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_item_read_by_a_loader_process_is_the_same_one_line_error(
        small_spec: SpaceSpec, tiny_train: TrainConfig, tiny_scenes: DigitScenes, tmp_path: Path, workers: int) -> None:
    from qnas.errors import DataError

    torch.manual_seed(0)
    supernet = build_supernet(small_spec)
    trainer = Trainer(supernet, supernet_stages(tiny_train, supernet.space), tiny_train, _BadItem(tiny_scenes), seed=3,
                      checkpoint_path=tmp_path / "c.pt", workers=workers)
    with pytest.raises(DataError) as error:
        trainer.run()
    assert str(error.value) == ("masks/train/five.png: mask ids 9 are neither a class (0 to 10) nor the ignore "
                                "index 255")

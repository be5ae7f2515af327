"""``qnas sample`` and ``qnas cost``: genomes and their analytic cost (no training needed)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from qnas.cli.command import Command, config_argument, context, print_metric_table, resolution, seed_int
from qnas.cost import genome_cost
from qnas.pipeline import load_table
from qnas.pipeline.paths import output_file
from qnas.space import Policy, policy_to_text, read_policy, write_policy

__all__ = ["SPACE_COMMANDS"]


# -- qnas sample -------------------------------------------------------------------------------
def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser, target=False)
    parser.add_argument("--seed", type=seed_int, default=0, metavar="N", help="seed of the random generator (default: 0)")
    parser.add_argument("--out", metavar="PATH", help="write the policy YAML here instead of printing it")
    parser.add_argument("--name", default=None, help="policy name (default: random_seed<N>)")


def _sample(args: argparse.Namespace) -> int:
    space = context(args).space
    genome = space.sample(np.random.default_rng(args.seed))
    policy = Policy(args.name or f"random_seed{args.seed}", genome,
                    provenance={"sampled_by": "qnas sample", "seed": args.seed, "config": str(args.config)})
    if args.out is not None:
        write_policy(output_file(args.out), policy, space)
        print(f"wrote {args.out}")
    else:
        print(policy_to_text(policy, space), end="")
    return 0


# -- qnas cost ---------------------------------------------------------------------------------
def _cost_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser, target=False)
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML (e.g. policies/uniform_w8a8.yaml)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: deploy.height)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: deploy.width)")
    parser.add_argument("--lut", metavar="LUT", default=None,
                        help="latency table (qnas latency-table): adds latency_ms, predicted at the table's resolution")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _cost(args: argparse.Namespace) -> int:
    ctx = context(args)
    policy = read_policy(args.policy, ctx.space)
    height, width = resolution(args, ctx)
    cost = genome_cost(ctx.spec, policy.genome, height, width)
    result = {**cost.as_dict(), "resolution": [height, width], "policy": policy.name}
    if args.lut:
        table = load_table(args.lut, force=args.force_lut)
        result["latency_ms"] = table.predict(ctx.spec, policy.genome)
        result["latency_resolution"] = list(table.resolution)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("MACs", f"{cost.macs / 1e9:.4f} G"), ("params", f"{cost.params / 1e6:.4f} M"),
            ("BitOps", f"{cost.bitops / 1e9:.3f} G"),
            ("BitOps (searchable layers)", f"{cost.bitops_searchable / 1e9:.3f} G")]
    if "latency_ms" in result:
        h, w = result["latency_resolution"]
        rows.append((f"INT8 latency at {h}x{w} (table)", f"{result['latency_ms']:.3f} ms"))
    print_metric_table(f"{policy.name} at {height}x{width}", rows)
    return 0


SPACE_COMMANDS = [
    Command("sample", "write a random valid genome as a policy YAML",
            "Draw a random genome from the config's search space (every gene uniform over its "
            "choices) and print it as a policy YAML, or write it to --out.",
            _sample_arguments, _sample),
    Command("cost", "MACs, parameters and BitOps of a policy",
            "Analytic cost of a policy at the deployment resolution: MACs, parameters, BitOps "
            "(sum of MACs x weight bits x activation bits) in total and over searchable layers.",
            _cost_arguments, _cost),
]

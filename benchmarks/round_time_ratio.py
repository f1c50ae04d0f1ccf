#!/usr/bin/python3
"""fedml's mean time per round against a plain PyTorch loop's, from their metrics files (JSON
lines with "wall_seconds"), printed as one line with the goal:
    round_time_ratio.py LABEL GOAL FEDML_JSONL TORCH_JSONL
"""
import json
import sys


def mean_round(path):
    rows = [json.loads(line) for line in open(path)]
    return sum(r["wall_seconds"] for r in rows) / len(rows)


label, goal = sys.argv[1], float(sys.argv[2])
f, t = mean_round(sys.argv[3]), mean_round(sys.argv[4])
ratio = f / t
print(f"{label:15s} per round: fedml {f:7.3f} s, PyTorch loop {t:7.3f} s, ratio {ratio:.3f} "
      f"(goal <= {goal:.2f}: {'PASS' if ratio <= goal else 'MISS'})", flush=True)

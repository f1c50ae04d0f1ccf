#!/usr/bin/python3
"""A plain PyTorch FedAvg loop: the baseline that benchmarks/round_time.sh times fedml against.

It replays the plan that `fedml partition --plan_file` wrote (each client's sample indices and
the clients sampled in every round), so both sides train the same clients on the same samples:
the built-in `cnn`, SGD, batch 32, 1 epoch per client, sample-weighted averaging, and the whole
test set evaluated after every round in batches of 250. PyTorch runs one intra-op thread per core
(Debian's build defaults to one thread in all, which would leave a core idle).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def load_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(data_dir, split):
    images = load_idx(f"{data_dir}/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = load_idx(f"{data_dir}/{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x = (images.astype(np.float32) / 255.0 - 0.2860) / 0.3530
    return torch.from_numpy(x), torch.from_numpy(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True)
    ap.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    plan = json.load(open(args.plan))
    x_train, y_train = load(args.data_dir, "train")
    x_test, y_test = load(args.data_dir, "t10k")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    global_model = CNN()
    local = CNN()
    out = open(args.out, "w") if args.out else None
    for r in range(args.rounds):
        t0 = time.perf_counter()
        global_state = {k: v.clone() for k, v in global_model.state_dict().items()}
        acc_state = {k: torch.zeros_like(v) for k, v in global_state.items()}
        total = 0
        for client in plan["rounds"][r]:
            idx = np.array(plan["clients"][client], dtype=np.int64)
            local.load_state_dict(global_state)
            opt = torch.optim.SGD(local.parameters(), lr=args.lr)
            local.train()
            order = rng.permutation(idx)
            for b in range(0, len(order), args.batch_size):
                batch = torch.from_numpy(order[b:b + args.batch_size])
                opt.zero_grad()
                loss = F.cross_entropy(local(x_train[batch]), y_train[batch])
                loss.backward()
                opt.step()
            n = len(idx)
            total += n
            for k, v in local.state_dict().items():
                acc_state[k] += v * n
        global_model.load_state_dict({k: v / total for k, v in acc_state.items()})
        global_model.eval()
        correct = 0
        with torch.no_grad():
            for b in range(0, len(y_test), 250):
                correct += (global_model(x_test[b:b + 250]).argmax(1) == y_test[b:b + 250]).sum().item()
        wall = time.perf_counter() - t0
        line = json.dumps({"round": r + 1, "test_accuracy": correct / len(y_test), "wall_seconds": wall})
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()


if __name__ == "__main__":
    main()

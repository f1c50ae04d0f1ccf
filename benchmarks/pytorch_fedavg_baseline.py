#!/usr/bin/python3
"""A plain PyTorch FedAvg loop: the baseline that benchmarks/round_time.sh and
benchmarks/workloads/run.sh time fedml against.

It replays the plan that `fedml partition --plan_file` wrote (each client's sample indices and
the clients sampled in every round), so both sides train the same clients on the same samples:
the same model (--model: fedml's built-in of that name, layer for layer), SGD, the batch size,
1 epoch per client, sample-weighted averaging, and the whole test set evaluated after every
round in batches of 250. PyTorch runs one intra-op thread per core (Debian's build defaults to
one thread in all, which would leave a core idle). Data: Fashion-MNIST's IDX files, or a
directory of .npy files (--npy_dir: x_train, y_train, x_test, y_test) as fedml's `npy` data set.
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


class CifarCNN(nn.Module):  # fedml's cnn_cifar: pfl-research's simple_cnn without dropout
    def __init__(self, channels, side, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(((side - 4) // 2) ** 2 * 64, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CharLSTM(nn.Module):  # fedml's lstm_shakespeare: LEAF's stacked LSTM
    def __init__(self, vocabulary, classes):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, 8)
        self.lstm = nn.LSTM(8, 256, num_layers=2, batch_first=True)
        self.fc = nn.Linear(256, classes)

    def forward(self, x):
        h, _ = self.lstm(self.embed(x.long()))
        return self.fc(h[:, -1])


class Block(nn.Module):  # fedml's ResNet basic block (BatchNorm, projection shortcuts)
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout)
        self.norm2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet20(nn.Module):
    def __init__(self, channels, classes, n=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        blocks, cin = [], 16
        for stage, width in enumerate([16, 32, 64]):
            for b in range(n):
                blocks.append(Block(cin, width, 2 if stage > 0 and b == 0 else 1))
                cin = width
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class LR(nn.Module):
    def __init__(self, inputs, classes):
        super().__init__()
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def make_model(name, shape, classes):
    if name == "cnn":
        return CNN()
    if name == "cnn_cifar":
        return CifarCNN(shape[0], shape[1], classes)
    if name == "lstm_shakespeare":
        return CharLSTM(classes, classes)
    if name == "resnet20":
        return ResNet20(shape[0], classes)
    if name == "lr":
        return LR(int(np.prod(shape)), classes)
    raise SystemExit(f"unknown model {name}")


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
    ap.add_argument("--npy_dir", default="")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    plan = json.load(open(args.plan))
    if args.npy_dir:
        x_train = torch.from_numpy(np.load(f"{args.npy_dir}/x_train.npy").astype(np.float32))
        y_train = torch.from_numpy(np.load(f"{args.npy_dir}/y_train.npy").astype(np.int64))
        x_test = torch.from_numpy(np.load(f"{args.npy_dir}/x_test.npy").astype(np.float32))
        y_test = torch.from_numpy(np.load(f"{args.npy_dir}/y_test.npy").astype(np.int64))
    else:
        x_train, y_train = load(args.data_dir, "train")
        x_test, y_test = load(args.data_dir, "t10k")
    classes = int(max(y_train.max(), y_test.max())) + 1
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    global_model = make_model(args.model, tuple(x_train.shape[1:]), classes)
    local = make_model(args.model, tuple(x_train.shape[1:]), classes)
    out = open(args.out, "w") if args.out else None
    for r in range(args.rounds):
        t0 = time.perf_counter()
        global_state = {k: v.clone() for k, v in global_model.state_dict().items()}
        acc_state = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_state.items()}
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
                acc_state[k] += v.double() * n
        global_model.load_state_dict(
            {k: (v / total).to(global_state[k].dtype) for k, v in acc_state.items()})
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

"""Train the `sample:digits-cnn` weights deterministically and print test accuracy.

    python scripts/train_digits_cnn.py [--out resources/samples/digits_cnn.safetensors]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from studio.core.base.atomic import atomic_path
from studio.core.data.digits import digits_split
from studio.core.model.samples.digits_cnn import WEIGHTS, DigitsCNN

EPOCHS = 40
BATCH = 64
SEED = 0


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train() -> tuple[DigitsCNN, float]:
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    data = digits_split()
    model = DigitsCNN()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(data.x_train), generator=gen)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval(), accuracy(model, data.x_test, data.y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args()
    torch.set_num_threads(1)  # bit-identical results across machines with different core counts
    model, acc = train()
    from safetensors.torch import save_file

    with atomic_path(args.out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    print(f"test accuracy: {acc:.4f} ({args.out})")


if __name__ == "__main__":
    main()

"""Train the `sample:minilm-sentiment` head on frozen MiniLM embeddings and print accuracy.

Logistic regression (scikit-learn, deterministic) on the embeddings of the training split;
the encoder stays the published all-MiniLM-L6-v2.

    python scripts/train_minilm_sentiment.py
"""

from __future__ import annotations

import argparse

import torch

from studio.core.base.atomic import atomic_path
from studio.core.data.rotten_tomatoes import snippets_split
from studio.core.model.samples.minilm_sentiment import (
    HEAD_WEIGHTS, SEQ_LEN, MiniLMSentiment, load_encoder, load_tokenizer)

C = 4.0  # inverse L2 strength: a fixed choice, not tuned on the test split


def embed_texts(model: MiniLMSentiment, tokenizer, texts: list[str], batch: int = 128) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer(texts[start:start + batch], padding=True, truncation=True,
                            max_length=SEQ_LEN, return_tensors="pt")
            out.append(model.embed(enc["input_ids"], enc["attention_mask"]))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(HEAD_WEIGHTS))
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    split = snippets_split()
    model = MiniLMSentiment(load_encoder()).eval()
    tokenizer = load_tokenizer()
    x_train = embed_texts(model, tokenizer, [t for t, _ in split.train]).numpy()
    x_test = embed_texts(model, tokenizer, [t for t, _ in split.test]).numpy()
    y_train = [y for _, y in split.train]
    y_test = [y for _, y in split.test]
    clf = LogisticRegression(C=C, max_iter=2000).fit(x_train, y_train)
    # Two-class logistic regression has one weight vector; logits (-w/2, +w/2) give the same softmax.
    w = torch.tensor(clf.coef_[0], dtype=torch.float32)
    b = torch.tensor(clf.intercept_[0], dtype=torch.float32)
    model.classifier.weight.data = torch.stack([-w / 2, w / 2])
    model.classifier.bias.data = torch.stack([-b / 2, b / 2])
    from safetensors.torch import save_file

    with atomic_path(args.out) as tmp:
        save_file({k: v.contiguous() for k, v in model.classifier.state_dict().items()}, str(tmp))
    acc = clf.score(x_test, y_test)
    print(f"train {len(y_train)}, test {len(y_test)}; test accuracy: {acc:.4f} ({args.out})")


if __name__ == "__main__":
    main()

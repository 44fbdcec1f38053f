"""Fine-tuning settings, their "auto" defaults per kind of model, and the knowledge-distillation
loss (Hinton et al.: soft targets at temperature T, scaled by T², plus hard-label cross-entropy;
optional hidden-state MSE between same-named layers of teacher and student, as in TinyBERT).

One learning rate for every model destroyed pretrained transformers (AdamW 1e-3 sent MiniLM's
loss from 0.5 to 19 in one step), so the optimizer settings default to "auto": resolved at run
start from what the model is, and reported with the reason."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.base.errors import StudioError

AUTO = "auto"
SCHEDULES = ("auto", "linear", "cosine", "constant")
BATCHNORM = ("auto", "train", "frozen")
MAX_LR = 1.0


@dataclass(frozen=True)
class FinetuneSettings:
    """Lives in the recipe under `settings.finetune`, so a run replays exactly."""

    epochs: int = 0
    lr: float | str = AUTO
    batch_size: int = 32
    distill: bool = True
    alpha: float = 0.7           # weight of the soft (teacher) loss; 1 - alpha for hard labels
    temperature: float = 4.0
    hidden: tuple[str, ...] = ()  # layer-name patterns whose outputs the student matches (MSE)
    hidden_weight: float = 1.0
    attention: tuple[str, ...] = ()  # self-attention layers whose probability maps the student matches (TinyBERT)
    attention_weight: float = 1.0
    eval_interval: int | str = AUTO  # steps between validation evaluations
    seed: int = 0
    max_steps: int | None = None
    schedule: str = AUTO          # linear (warm-up, then linear decay to 0), cosine, constant
    warmup: float | str = AUTO    # fraction of the steps spent warming the lr up from 0
    weight_decay: float | str = AUTO
    grad_clip: float = 1.0        # max global gradient norm; 0 turns clipping off
    patience: int = 3             # evaluations without improvement before stopping; 0: never early
    recalibrate_bn: bool | str = AUTO  # re-estimate BatchNorm statistics after compressing (kept only if better)
    batchnorm: str = AUTO         # while fine-tuning: "train" (batch statistics) or "frozen" (running ones)
    head_lr: float | str = AUTO   # the output layer's lr as a multiple of lr (it must re-learn what pruning moved)
    refit_head: bool | str = AUTO  # re-fit the output layer on the compressed features first (kept only if better)
    attention_dropout: float | str = AUTO  # attention-probability dropout while fine-tuning (finetune_dropout)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FinetuneSettings:
        if data is not None and not isinstance(data, dict):
            raise StudioError(f"settings.finetune must be a mapping of setting: value, not {type(data).__name__}.")
        data = dict(data or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise StudioError(f"settings.finetune: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        problems = [p for key, value in data.items() if (p := _problem(key, value))]
        if problems:
            raise StudioError("settings.finetune: " + " ".join(problems))
        data = {k: _normalise(k, v) for k, v in data.items()}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        out["attention"] = list(self.attention)
        if not self.attention:  # off: recipes and reports stay as before the option existed
            out.pop("attention"), out.pop("attention_weight")
        return {k: v for k, v in out.items() if v is not None}

    def problems(self) -> list[str]:
        """One sentence per bad value (the same checks as from_dict, for settings built in code)."""
        return [p for f in fields(self) if (p := _problem(f.name, getattr(self, f.name)))]


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(key: str, value: Any, low: int, what: str) -> str | None:
    if not _is_int(value) or value < low:
        return f"{key} must be a whole number ≥ {low} ({what}), not {value!r}."
    return None


def _number(key: str, value: Any, low: float, high: float, what: str, low_open: bool = False) -> str | None:
    if not _is_number(value) or value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        return f"{key} must be a finite number in {bracket}{low:g}, {high:g}] ({what}), not {value!r}."
    return None


def _problem(key: str, value: Any) -> str | None:
    """The sentence explaining why `value` is not acceptable for `key`, or None."""
    auto = isinstance(value, str) and value == AUTO
    if key == "epochs":
        return _whole(key, value, 0, "0 skips fine-tuning")
    if key == "batch_size":
        return _whole(key, value, 1, "samples per training step")
    if key == "seed":
        return _whole(key, value, 0, "the shuffling and initialisation seed")
    if key == "patience":
        return _whole(key, value, 0, "evaluations without improvement; 0 never stops early")
    if key == "max_steps":
        return None if value is None else _whole(key, value, 1, "or leave it out")
    if key == "eval_interval":
        return None if auto else _whole(key, value, 1, 'steps between evaluations, or "auto"')
    if key == "lr":
        return None if auto else _number(key, value, 0, MAX_LR, 'AdamW learning rate, or "auto"', low_open=True)
    if key == "warmup":
        return None if auto else _number(key, value, 0, 0.9, 'fraction of the steps, or "auto"')
    if key == "weight_decay":
        return None if auto else _number(key, value, 0, 1, 'AdamW weight decay, or "auto"')
    if key == "head_lr":
        return None if auto else _number(key, value, 0, 1000, 'multiple of lr for the output layer, or "auto"',
                                         low_open=True)
    if key == "attention_dropout":
        return None if auto else _number(key, value, 0, 0.9, 'attention-probability dropout while fine-tuning, or "auto"')
    if key == "alpha":
        return _number(key, value, 0, 1, "weight of the original's soft targets")
    if key == "temperature":
        return _number(key, value, 0, 100, "softens both models' outputs", low_open=True)
    if key == "hidden_weight":
        return _number(key, value, 0, 1e6, "weight of the hidden-state loss")
    if key == "attention_weight":
        return _number(key, value, 0, 1e6, "weight of the attention-map loss")
    if key == "grad_clip":
        return _number(key, value, 0, 1e6, "max gradient norm; 0 turns clipping off")
    if key == "refit_head":
        return None if auto or isinstance(value, bool) else f'refit_head must be true, false or "auto", not {value!r}.'
    if key == "recalibrate_bn":
        return None if auto or isinstance(value, bool) else f'recalibrate_bn must be true, false or "auto", not {value!r}.'
    if key == "distill":
        return None if isinstance(value, bool) else f"{key} must be true or false, not {value!r}."
    if key == "batchnorm":
        return None if value in BATCHNORM else f"batchnorm must be one of {', '.join(BATCHNORM)}, not {value!r}."
    if key == "schedule":
        return None if value in SCHEDULES else f"schedule must be one of {', '.join(SCHEDULES)}, not {value!r}."
    if key in ("hidden", "attention"):
        if isinstance(value, str):
            return (f'{key} must be a list of layer-name patterns, e.g. ["{value}"], not the string {value!r} '
                    "(it would be read letter by letter).")
        if value is not None and (not isinstance(value, (list, tuple))
                                  or not all(isinstance(p, str) and p for p in value)):
            return f"{key} must be a list of non-empty layer-name patterns, not {value!r}."
    return None


def _normalise(key: str, value: Any) -> Any:
    if key in ("hidden", "attention"):
        return tuple(value or ())
    if key in ("epochs", "batch_size", "seed", "patience", "max_steps") and value is not None:
        return int(value)
    if key == "eval_interval" and value != AUTO:
        return int(value)
    if key in ("lr", "warmup", "weight_decay", "head_lr", "attention_dropout") and value != AUTO:
        return float(value)
    return value


# --- "auto": settings chosen from what the model is ---------------------------------------------

@dataclass(frozen=True)
class Defaults:
    family: str
    lr: float
    schedule: str
    warmup: float
    weight_decay: float
    why: str
    batchnorm: str = "train"
    head_lr: float = 1.0
    refit_head: bool = False
    recalibrate_bn: bool = True
    attention_dropout: float | None = None  # None: the model's own rates


TRANSFORMER = Defaults("pretrained transformer", 3e-5, "linear", 0.1, 0.01,
                       "pretrained transformer: AdamW 3e-5 with 10 % linear warm-up, then linear decay "
                       "(BERT fine-tuning practice); larger rates wipe out what pre-training learned; attention "
                       "dropout off (it keeps SDPA off its fused kernel; pruned MiniLM: 13 % less CPU per step, 76.8 % after 1 epoch)",
                       attention_dropout=0.0)
SMALL_NET = Defaults("small network", 1e-3, "constant", 0.0, 0.0,
                     "small network (< 1M parameters): AdamW 1e-3, constant (digits, 90 % pruned, 3 epochs: "
                     "84.9 % vs 73.1 % with cosine decay)")
LARGE_CNN = Defaults("pretrained CNN", 1e-4, "cosine", 0.05, 1e-4,
                     "CNN with ≥ 1M parameters (likely pretrained): AdamW 1e-4, 5 % warm-up, cosine decay, "
                     "BatchNorm statistics frozen (Keras' transfer-learning advice: training-mode BatchNorm on "
                     "small or shifted batches trains one normalisation and evaluates another); after compressing, "
                     "the output layer re-fitted on the compressed features and BatchNorm statistics not "
                     "re-estimated (EfficientNet-Lite0 on digits, 30 % pruned: 10.0 % → 96.4 % re-fitted; "
                     "re-estimated first: 58.0 %)", "frozen", refit_head=True, recalibrate_bn=False)


def recalibrates_bn(settings: FinetuneSettings, model: nn.Module) -> bool:
    """Whether a run re-estimates BatchNorm statistics after compressing ("auto": the family's default)."""
    return model_family(model).recalibrate_bn if settings.recalibrate_bn == AUTO else bool(settings.recalibrate_bn)


def refit_head(settings: FinetuneSettings, model: nn.Module) -> bool:
    """Whether a run re-fits the output layer after compressing ("auto": the family's default)."""
    return model_family(model).refit_head if settings.refit_head == AUTO else bool(settings.refit_head)


def model_family(model: nn.Module) -> Defaults:
    """Transformers (attention modules, Hugging Face models) vs small networks vs large CNNs."""
    for module in model.modules():
        names = [c.__name__ for c in type(module).__mro__]
        if isinstance(module, (nn.MultiheadAttention, nn.TransformerEncoderLayer)) or "PreTrainedModel" in names:
            return TRANSFORMER
    params = sum(p.numel() for p in model.parameters())
    return SMALL_NET if params < 1_000_000 else LARGE_CNN


@dataclass(frozen=True)
class Resolved:
    """The values a run actually uses ("auto" resolved) and why; goes into the report."""

    family: str
    lr: float
    schedule: str
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    eval_interval: int
    total_steps: int
    why: str
    batchnorm: str = "train"  # "frozen": BatchNorm layers normalise with their running statistics
    head_lr: float = 1.0      # the output layer's lr as a multiple of `lr`
    attention_dropout: float | None = None  # None: the model's own attention-probability dropout

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        warm = f", {self.warmup_steps} warm-up steps" if self.warmup_steps else ""
        clip = f", gradients clipped at norm {self.grad_clip:g}" if self.grad_clip else ""
        frozen = ", BatchNorm statistics frozen" if self.batchnorm == "frozen" else ""
        head = f", output layer at {self.head_lr:g}× lr" if self.head_lr != 1 else ""
        attention = "" if self.attention_dropout is None else \
            (", attention dropout off" if self.attention_dropout == 0 else f", attention dropout {self.attention_dropout:g}")
        return (f"AdamW lr {self.lr:g} ({self.schedule}{warm}){head}, weight decay {self.weight_decay:g}{clip}{frozen}"
                f"{attention}; "
                f"evaluating every {self.eval_interval} steps")


def resolve(settings: FinetuneSettings, model: nn.Module, total_steps: int) -> Resolved:
    defaults = model_family(model)
    keys = ("lr", "schedule", "warmup", "weight_decay", "head_lr", "attention_dropout")
    explicit = [k for k in keys if getattr(settings, k) != AUTO]
    why = defaults.why if not explicit else f"{', '.join(explicit)} from the settings; the rest for a {defaults.why}"
    pick = {k: (getattr(defaults, k) if getattr(settings, k) == AUTO else getattr(settings, k)) for k in keys}
    interval = settings.eval_interval
    if interval == AUTO:  # two per epoch, at most four per run (each is a pass over the validation split)
        interval = max(1, math.ceil(total_steps / min(4, 2 * max(1, settings.epochs))))
    batchnorm = defaults.batchnorm if settings.batchnorm == AUTO else settings.batchnorm
    return Resolved(defaults.family, float(pick["lr"]), str(pick["schedule"]),
                    int(round(float(pick["warmup"]) * total_steps)), float(pick["weight_decay"]),
                    float(settings.grad_clip), int(interval), total_steps, why, batchnorm, float(pick["head_lr"]),
                    None if pick["attention_dropout"] is None else float(pick["attention_dropout"]))


def lr_factor(step: int, resolved: Resolved) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): warm-up, then the decay."""
    warm, total = resolved.warmup_steps, max(resolved.total_steps, 1)
    if step < warm:
        return (step + 1) / (warm + 1)
    if resolved.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if resolved.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return max(0.0, 1 - progress)


def output_layer(model: nn.Module) -> nn.Module | None:
    """The last Linear/Conv2d registered: a classifier's head (`fc`, `classifier`, `_fc`)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return layers[-1] if layers else None


def param_groups(model: nn.Module, weight_decay: float, head_lr: float = 1.0) -> list[dict[str, Any]]:
    """No decay for biases and normalisation weights (1-D tensors), as in BERT/timm recipes; with
    `head_lr` ≠ 1 the output layer gets its own groups, their lr scaled by `lr_scale`."""
    head = output_layer(model) if head_lr != 1 else None
    own = {id(p) for p in head.parameters()} if head is not None else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for scale, members in ((1.0, [p for p in params if id(p) not in own]), (head_lr, [p for p in params if id(p) in own])):
        groups += [{"params": [p for p in members if p.dim() >= 2], "weight_decay": weight_decay, "lr_scale": scale},
                   {"params": [p for p in members if p.dim() < 2], "weight_decay": 0.0, "lr_scale": scale}]
    return [g for g in groups if g["params"]]


FUSED_DEVICES = ("cpu", "cuda")


def adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where it runs: one pass over each tensor instead of a dozen
    (MiniLM on this CPU: 120 → 18 ms per step, most of it the 12 M-parameter embedding table)."""
    params = [p for g in groups for p in g["params"]]
    fused = all(p.dtype.is_floating_point and p.device.type in FUSED_DEVICES for p in params)
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


# --- losses ----------------------------------------------------------------------------------------

def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None,
                      alpha: float, temperature: float) -> torch.Tensor:
    t = temperature
    if student.dim() > 2 and labels is None:  # sequence logits (a causal LM on text): the mean per token
        student, teacher = student.reshape(-1, student.shape[-1]), teacher.reshape(-1, teacher.shape[-1])
    soft = F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * (t * t)
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student, labels)


@dataclass
class HiddenCapture:
    """Forward hooks that record the outputs of layers matching `patterns` by name."""

    patterns: tuple[str, ...]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    handles: list[Any] = field(default_factory=list)

    def attach(self, model: nn.Module) -> HiddenCapture:
        for name, module in model.named_modules():
            if name and any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def hook(_module, _args, output):
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, torch.Tensor):
                self.outputs[name] = tensor
        return hook

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def teacher_name(name: str, layer_map: dict[str, str]) -> str:
    """The teacher's name for a student layer: a dropped layer renumbers the ones after it, and
    the student keeps `layer_map` (its layer → the original's) so each layer matches its origin."""
    for prefix in sorted(layer_map, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return layer_map[prefix] + name[len(prefix):]
    return name


def hidden_mse(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
               layer_map: dict[str, str] | None = None) -> torch.Tensor | None:
    pairs = [(student[k], teacher.get(teacher_name(k, layer_map or {}))) for k in student]
    losses = [F.mse_loss(s.float(), t.float()) for s, t in pairs if t is not None and s.shape == t.shape]
    return torch.stack(losses).mean() if losses else None

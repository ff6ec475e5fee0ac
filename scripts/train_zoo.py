"""Train the zoo's models on CPU, evaluate them on the held-out splits, ship weights, cards and clips.

    .venv/bin/python scripts/build_datasets.py            # once: data/ from Debian packages
    .venv/bin/python scripts/train_zoo.py                 # all: instruments speech percussion percussion-wave silero-vad
    .venv/bin/python scripts/train_zoo.py speech --seed 1 # one model, another seed
    .venv/bin/python scripts/train_zoo.py --evaluate-only # re-measure the shipped weights

For each zoo model it trains a :class:`~captum_freqrex.zoo._models.LogMelCNN` (or, for
``percussion-wave``, a :class:`~captum_freqrex.zoo._models.WaveCNN` on the percussion data) with
one thread from a fixed seed, evaluates it on the whole held-out split, picks a few held-out sample
clips, writes them as FLAC to ``captum_freqrex/zoo/clips/`` (a model of a task that already ships
clips reuses them) and writes ``captum_freqrex/zoo/weights/<name>.pt`` and the card
``<name>.json`` beside it (seed, data recipe, held-out accuracy, per-row inference time, licences,
and which shipped clips the model classifies correctly). ``silero-vad`` is not trained: its card
records its accuracy on a held-out speech / no-speech set built from the three test splits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from captum_freqrex.datasets import (  # noqa: E402
    FLUID_LICENCE,
    KIT_LICENCES,
    SPEECH_LICENCES,
    DatasetSplit,
    load_split,
)
from captum_freqrex.datasets._store import read_manifest  # noqa: E402
from captum_freqrex.zoo._models import LogMelCNN, WaveCNN  # noqa: E402

ZOO = os.path.join(REPO, "captum_freqrex", "zoo")
WEIGHTS = os.path.join(ZOO, "weights")
CLIPS = os.path.join(ZOO, "clips")
WEIGHTS_LICENCE = "BSD-3-Clause (trained by captum_freqrex's scripts/train_zoo.py)"

#: The training recipe of both percussion models (one recipe, so the two differ in architecture only).
_PERCUSSION_TRAINING: Dict[str, Any] = {
    "crop_seconds": None,
    "crops_per_clip": 4,
    "epochs": 40,
    "batch_size": 32,
    "lr": 3e-3,
    "weight_decay": 1e-3,
    "gain_db": 10.0,
    "noise": 0.003,
    "shift": "delay",
    # Tried with kits ForzeeStereo + Millo_MultiLayered2 as validation (seeds 0, 1; 30 epochs):
    # no extra augmentation 0.892 / 0.892, random EQ +-12 dB 0.871 / 0.878, speed +-10 %
    # 0.914 / 0.849. Kept off.
    "speed": 0.0,
    "eq_db": 0.0,
    "eval_batch": 128,
}

#: Per zoo model: architecture, training recipe, and which held-out clips to ship. ``dataset``
#: (default: the name) is the built data set it learns; ``model`` (default ``LogMelCNN``) its class;
#: ``clips_from`` names a model of the same data set whose shipped clips it reuses.
TASKS: Dict[str, Dict[str, Any]] = {
    "instruments": {
        "arch": {"n_fft": 1024, "hop_length": 1024, "n_mels": 64, "channels": [8, 16, 32, 64],
                 "pools": [[4, 4], [2, 2], [2, 2], [2, 1]], "dropout": 0.2},
        "crop_seconds": 4.0,
        "crops_per_clip": 4,
        "epochs": 40,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 1e-3,
        "gain_db": 6.0,
        "noise": 0.0,
        "shift": "crop",
        "ship_classes": ["piano", "strings"],
        "eval_batch": 8,
    },
    "speech": {
        "arch": {"n_fft": 512, "hop_length": 256, "n_mels": 64, "channels": [16, 32, 64, 64],
                 "pools": [[2, 2], [2, 2], [2, 2], [2, 2]], "dropout": 0.2},
        "crop_seconds": None,
        "crops_per_clip": 1,
        "epochs": 25,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 1e-3,
        "gain_db": 6.0,
        "noise": 0.0,
        "shift": "roll",
        "ship_classes": ["en", "es", "fr", "it", "ru"],
        "eval_batch": 64,
    },
    "percussion": {
        "arch": {"n_fft": 512, "hop_length": 128, "n_mels": 64, "channels": [16, 32, 64, 64],
                 "pools": [[2, 2], [2, 2], [2, 2], [2, 2]], "dropout": 0.3},
        **_PERCUSSION_TRAINING,
        "ship_classes": ["kick", "snare", "hihat", "cymbal", "tom"],
        # Shipped clips come from the held-out kit with an attribution licence (CC-BY 3.0), so the
        # package ships no GPL-licensed audio.
        "ship_source_prefix": "rumpf_kit_z01_h2/",
    },
    # The same task built differently (a learned filterbank on the raw waveform and a 1-D CNN, no
    # Fourier transform), for transferability checks (benchmarks/transferability.py). Same data,
    # seed and training recipe (_PERCUSSION_TRAINING) as "percussion".
    "percussion-wave": {
        "dataset": "percussion",
        "model": "WaveCNN",
        "arch": {"n_filters": 48, "filter_length": 256, "stride": 8, "energy_pool": 20,
                 "channels": [64, 64, 96, 96], "kernel_size": 5, "pool": 2, "dropout": 0.3},
        **_PERCUSSION_TRAINING,
        "clips_from": "percussion",
    },
}

#: What each data set's models do (the card's "task"; models of one data set share it).
TASK_DESCRIPTIONS = {"instruments": "instrument-family classification", "speech": "spoken-language identification",
                     "percussion": "drum-sound type classification"}
MODELS = {"LogMelCNN": LogMelCNN, "WaveCNN": WaveCNN}


def dataset_of(name: str) -> str:
    """The built data set a zoo model learns (its own name unless its entry says otherwise)."""
    return str(TASKS[name].get("dataset", name))


def build_model(name: str, n_classes: int, rate: int) -> torch.nn.Module:
    """A new, untrained model of ``TASKS[name]``'s class and architecture."""
    cfg = TASKS[name]
    kind = cfg.get("model", "LogMelCNN")
    if kind == "LogMelCNN":
        return LogMelCNN.create(n_classes, sample_rate=rate, **cfg["arch"])
    return MODELS[kind](n_classes, sample_rate=rate, **cfg["arch"])


# ----------------------------------------------------------------------------- training


def _speed(batch: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    """Play each row faster or slower by up to ``amount`` (pitch and duration together), same length."""
    rows = []
    for wave in batch:
        factor = 1.0 + (float(torch.rand(1, generator=g)) * 2 - 1) * amount
        length = max(int(round(wave.shape[0] / factor)), 2)
        moved = F.interpolate(wave[None, None], size=length, mode="linear", align_corners=False)[0, 0]
        rows.append(F.pad(moved, (0, max(wave.shape[0] - length, 0)))[: wave.shape[0]])
    return torch.stack(rows)


def _random_eq(batch: torch.Tensor, max_db: float, g: torch.Generator) -> torch.Tensor:
    """A random smooth equaliser per row: gain in dB = three random cosines over log frequency."""
    n = batch.shape[-1]
    spectrum = torch.fft.rfft(batch)
    freqs = torch.linspace(0, 1, spectrum.shape[-1])
    u = torch.log1p(freqs * 100) / torch.log1p(torch.tensor(100.0))  # 0..1, roughly log-spaced
    k = torch.arange(1, 4, dtype=torch.float32)
    coeffs = (torch.rand(batch.shape[0], 3, generator=g) * 2 - 1) * (max_db / 3)
    gain_db = coeffs @ torch.cos(torch.pi * k[:, None] * u[None, :])
    return torch.fft.irfft(spectrum * 10 ** (gain_db / 20), n=n)


def _augment(batch: torch.Tensor, cfg: Dict[str, Any], num_samples: int, rate: int, g: torch.Generator) -> torch.Tensor:
    """Random crop / roll / delay, gain and noise, per row."""
    rows = []
    for wave in batch:
        if cfg["shift"] == "crop":
            start = int(torch.randint(0, wave.shape[0] - num_samples + 1, (1,), generator=g))
            wave = wave[start : start + num_samples]
        elif cfg["shift"] == "roll":
            wave = torch.roll(wave, int(torch.randint(0, wave.shape[0], (1,), generator=g)))
        elif cfg["shift"] == "delay":
            delay = int(torch.randint(0, int(0.1 * rate), (1,), generator=g))
            wave = F.pad(wave, (delay, 0))[: wave.shape[0]]
        rows.append(wave)
    out = torch.stack(rows)
    if cfg.get("speed"):
        out = _speed(out, cfg["speed"], g)
    if cfg.get("eq_db"):
        out = _random_eq(out, cfg["eq_db"], g)
    gain_db = (torch.rand(out.shape[0], 1, generator=g) * 2 - 1) * cfg["gain_db"]
    out = out * 10 ** (gain_db / 20)
    if cfg["noise"]:
        level = torch.rand(out.shape[0], 1, generator=g) * cfg["noise"]
        out = out + level * torch.randn(out.shape, generator=g)
    return out


def train(task: str, data_dir: str, seed: int, log: bool = True) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Train one zoo model from ``seed``; returns the model (eval mode) and the training record."""
    cfg = TASKS[task]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = load_split(data_dir, dataset_of(task), "train")
    rate = data.sample_rate
    num_samples = int(cfg["crop_seconds"] * rate) if cfg["crop_seconds"] else data.waveforms.shape[1]
    model = build_model(task, len(data.class_names), rate)
    counts = torch.bincount(data.labels, minlength=len(data.class_names)).float()
    class_weight = (counts.sum() / (len(counts) * counts.clamp(min=1)))  # balanced classes
    steps_per_epoch = math.ceil(len(data.labels) * cfg["crops_per_clip"] / cfg["batch_size"])
    total = steps_per_epoch * cfg["epochs"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=total, pct_start=0.15)
    start = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(data.labels) * cfg["crops_per_clip"], generator=g) % len(data.labels)
        losses, correct = [], 0
        for step in range(steps_per_epoch):
            idx = order[step * cfg["batch_size"] : (step + 1) * cfg["batch_size"]]
            if len(idx) < 2:
                continue
            x = _augment(data.waveforms[idx], cfg, num_samples, rate, g)
            y = data.labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=class_weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == y).sum())
        if log:
            print(f"  {task} epoch {epoch + 1}/{cfg['epochs']}: loss {np.mean(losses):.3f}, "
                  f"train acc {correct / len(order):.3f}, {time.perf_counter() - start:.0f} s", flush=True)
    model.eval()
    record = {
        "epochs": cfg["epochs"],
        "batch_size": cfg["batch_size"],
        "optimizer": f"AdamW(lr={cfg['lr']}, weight_decay={cfg['weight_decay']}), one-cycle schedule (15 % warm-up)",
        "loss": "cross-entropy, class-balanced weights, label smoothing 0.05",
        "train_input": (f"random {cfg['crop_seconds']:g} s crops ({cfg['crops_per_clip']} per clip per epoch)"
                        if cfg["crop_seconds"] else f"whole {num_samples / rate:g} s clips ({cfg['crops_per_clip']} per clip per epoch)"),
        "augmentation": {"shift": cfg["shift"], "gain_db": f"uniform +-{cfg['gain_db']}", "noise_std_max": cfg["noise"],
                         "speed": f"uniform +-{cfg.get('speed', 0) * 100:g} % (pitch and duration)",
                         "random_eq_db": f"three random cosines over log frequency, +-{cfg.get('eq_db', 0):g} dB in all"},
        "train_examples": int(len(data.labels)),
        "train_seconds_wall": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return model, record


# ----------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def predict(model: torch.nn.Module, waves: torch.Tensor, batch: int) -> torch.Tensor:
    """Argmax predictions, in batches."""
    return torch.cat([model(waves[i : i + batch]).argmax(1) for i in range(0, len(waves), batch)])


def evaluate(model: torch.nn.Module, data: DatasetSplit, batch: int) -> Dict[str, Any]:
    """Accuracy, balanced accuracy, per-class accuracy and confusion matrix on a split."""
    pred = predict(model, data.waveforms, batch)
    n = len(data.class_names)
    confusion = torch.zeros(n, n, dtype=torch.long)
    for t, p in zip(data.labels.tolist(), pred.tolist()):
        confusion[t, p] += 1
    per_class = {name: round(float(confusion[i, i] / confusion[i].sum().clamp(min=1)), 4) for i, name in enumerate(data.class_names)}
    return {
        "accuracy": round(float((pred == data.labels).float().mean()), 4),
        "balanced_accuracy": round(float(np.mean(list(per_class.values()))), 4),
        "n": int(len(data.labels)),
        "per_class_accuracy": per_class,
        "confusion_matrix": {"rows_true_cols_predicted": list(data.class_names), "counts": confusion.tolist()},
    }


@torch.inference_mode()
def per_row_ms(model: torch.nn.Module, num_samples: int, batch: int = 32, threads: int = 2, repeats: int = 5) -> float:
    """Best-of-``repeats`` wall time per row of ``model`` on ``(batch, num_samples)`` noise, with
    ``threads`` (the minimum is the least disturbed by other work on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = 0.1 * torch.randn(batch, num_samples, generator=torch.Generator().manual_seed(0))
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return round(float(np.min(times)) / batch * 1000, 3)


# ----------------------------------------------------------------------------- shipped clips


def _write_flac(path: str, wave: torch.Tensor, rate: int) -> None:
    import soundfile

    soundfile.write(path, wave.numpy(), rate, subtype="PCM_16", format="FLAC")


def _read_flac(path: str) -> torch.Tensor:
    import soundfile

    data, _ = soundfile.read(path, dtype="float32")
    return torch.from_numpy(data)


def _clip_licence(task: str, source: str, label: str) -> str:
    if task == "instruments":
        return f"{FLUID_LICENCE}. Melody generated by captum_freqrex ({source})."
    if task == "speech":
        return f"{SPEECH_LICENCES[label]}. Resampled to 16 kHz, loudness-normalised, zero-padded ({source})."
    kit = source.split("/")[0]
    return f"{kit} drum kit: {KIT_LICENCES.get(kit, 'see /usr/share/doc/hydrogen-drumkits/copyright')}. Resampled, trimmed, faded ({source})."


def _choose_clips(task: str, test: DatasetSplit) -> List[int]:
    """Deterministic held-out rows to ship: the first clip of each class in ``ship_classes``
    (among sources starting with ``ship_source_prefix`` when set).

    Speech ships one prompt in all five languages when one of at least 2 s of speech exists.
    Nothing here looks at the model's predictions.
    """
    wanted = TASKS[task]["ship_classes"]
    rows = []
    if task == "speech":
        by_prompt: Dict[str, Dict[str, int]] = {}
        for i, (src, y) in enumerate(zip(test.sources, test.labels.tolist())):
            prompt = src.split("/", 1)[1]
            voiced = float((test.waveforms[i].abs() > 0.01).float().mean())
            if voiced > 0.6:
                by_prompt.setdefault(prompt, {})[test.class_names[y]] = i
        full = sorted(p for p, langs in by_prompt.items() if all(c in langs for c in wanted))
        if full:
            return [by_prompt[full[0]][c] for c in wanted]
    prefix = TASKS[task].get("ship_source_prefix", "")
    for name in wanted:
        label = test.class_names.index(name)
        rows.append(next(i for i, (y, src) in enumerate(zip(test.labels.tolist(), test.sources))
                         if y == label and src.startswith(prefix)))
    return rows


def reuse_clips(task: str, model: torch.nn.Module) -> List[Dict[str, Any]]:
    """The card entries of the clips another model of the same data set ships (``clips_from``), with
    this model's predictions; no audio is written twice."""
    with open(os.path.join(WEIGHTS, f"{TASKS[task]['clips_from']}.json")) as handle:
        entries = json.load(handle)["clips"]
    class_names = _card_class_names(TASKS[task]["clips_from"])
    out = []
    for entry in entries:
        wave = _read_flac(os.path.join(CLIPS, entry["file"]))
        pred = class_names[int(predict(model, wave.unsqueeze(0), 1)[0])]
        out.append({**entry, "predicted": pred, "correct": pred == entry["label"]})
    return out


def _card_class_names(name: str) -> List[str]:
    with open(os.path.join(WEIGHTS, f"{name}.json")) as handle:
        return list(json.load(handle)["class_names"])


def ship_clips(task: str, model: torch.nn.Module, test: DatasetSplit) -> List[Dict[str, Any]]:
    """Write the chosen held-out clips as FLAC; return their card entries with the model's predictions."""
    if "clips_from" in TASKS[task]:
        return reuse_clips(task, model)
    os.makedirs(CLIPS, exist_ok=True)
    for old in os.listdir(CLIPS):
        if old.startswith(f"{task}_") and old.endswith(".flac"):
            os.remove(os.path.join(CLIPS, old))
    entries = []
    for k, row in enumerate(_choose_clips(task, test)):
        label = test.class_names[int(test.labels[row])]
        name = f"{task}_{k}_{label}.flac"
        path = os.path.join(CLIPS, name)
        _write_flac(path, test.waveforms[row], test.sample_rate)
        wave = _read_flac(path)  # what users will load
        pred = int(predict(model, wave.unsqueeze(0), 1)[0])
        entries.append({
            "file": name,
            "name": f"{task} {k}: {label} ({test.sources[row]})",
            "label": label,
            "source": test.sources[row],
            "licence": _clip_licence(task, test.sources[row], label),
            "predicted": test.class_names[pred],
            "correct": test.class_names[pred] == label,
        })
    return entries


# ----------------------------------------------------------------------------- cards


def _write_card(name: str, card: Dict[str, Any]) -> None:
    os.makedirs(WEIGHTS, exist_ok=True)
    with open(os.path.join(WEIGHTS, f"{name}.json"), "w") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")


def _load_shipped(task: str) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    with open(os.path.join(WEIGHTS, f"{task}.json")) as handle:
        card = json.load(handle)
    arch = dict(card["architecture"])
    model = MODELS[card["model"]](**arch)
    model.load_state_dict(torch.load(os.path.join(WEIGHTS, card["weights"]), map_location="cpu", weights_only=True))
    return model.eval(), card


def run_task(task: str, data_dir: str, seed: int, evaluate_only: bool) -> Dict[str, Any]:
    """Train (unless ``evaluate_only``), evaluate, ship clips, write weights and card."""
    dataset = dataset_of(task)
    manifest = read_manifest(os.path.join(data_dir, dataset))
    test = load_split(data_dir, dataset, "test")
    if evaluate_only:
        model, card = _load_shipped(task)
        record = card["training"]
        seed = card["seed"]
    else:
        model, record = train(task, data_dir, seed)
        torch.save(model.state_dict(), os.path.join(WEIGHTS, f"{task}.pt"))
    held_out = evaluate(model, test, TASKS[task]["eval_batch"])
    held_out["split"] = f"test split of data/{dataset} ({manifest['splits']['test']})"
    held_out["command"] = f".venv/bin/python scripts/train_zoo.py {task} --evaluate-only"
    num_samples = int(test.waveforms.shape[1])
    clips = ship_clips(task, model, test)
    card = {
        "name": task,
        "task": TASK_DESCRIPTIONS[dataset],
        **({"dataset": dataset} if dataset != task else {}),
        "class_names": list(test.class_names),
        "sample_rate": test.sample_rate,
        "num_samples": num_samples,
        # A model trained on random crops never saw zero padding: short clips are explained as they are.
        "pad_short_clips": TASKS[task]["crop_seconds"] is None,
        "model": type(model).__name__,
        "architecture": model.config,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "weights": f"{task}.pt",
        "seed": seed,
        "training": record,
        "data": {"recipe": manifest["recipe"], "splits": manifest["splits"], "build": ".venv/bin/python scripts/build_datasets.py " + dataset},
        "held_out": held_out,
        "inference_ms_per_row": {
            "value": per_row_ms(model, num_samples),
            "setting": f"best of 5 calls, batch 32 of {num_samples / test.sample_rate:g} s clips, 2 threads, torch {torch.__version__}, {platform.machine()}",
        },
        "licence": {"weights": WEIGHTS_LICENCE, "data": manifest.get("licence"), **({"kits": manifest["kit_licences"]} if "kit_licences" in manifest else {})},
        "clips": clips,
        "clips_accuracy": round(sum(c["correct"] for c in clips) / len(clips), 4),
    }
    _write_card(task, card)
    print(f"{task}: held-out accuracy {held_out['accuracy']:.4f} (balanced {held_out['balanced_accuracy']:.4f}, n={held_out['n']}), "
          f"{card['inference_ms_per_row']['value']} ms/row, shipped clips correct: {[c['correct'] for c in clips]}", flush=True)
    return card


def silero_held_out(data_dir: str, rate: int = 16000, num_samples: int = 48000) -> DatasetSplit:
    """The silero-vad card's held-out set: no-speech clips (label 0) first, then speech (label 1).

    Speech: every held-out prompt (data/speech test). No speech: 3 s crops of the held-out
    instrument clips (at 0, 10, 20 s) and 3 s sequences of three held-out drum hits.
    """
    speech = load_split(data_dir, "speech", "test")
    instruments = load_split(data_dir, "instruments", "test")
    percussion = load_split(data_dir, "percussion", "test")
    starts = (0, 10, 20)
    no_speech = [instruments.waveforms[:, s * rate : s * rate + num_samples] for s in starts]
    n_hits = (len(percussion.labels) // 3) * 3
    hits = percussion.waveforms[:n_hits].reshape(-1, 3 * percussion.waveforms.shape[1])
    no_speech.append(hits[:, :num_samples])
    negatives = torch.cat(no_speech)
    waves = torch.cat([negatives, speech.waveforms])
    labels = torch.cat([torch.zeros(len(negatives), dtype=torch.long), torch.ones(len(speech.labels), dtype=torch.long)])
    sources = [f"instruments test {i} at {s} s ({src})" for s in starts for i, src in enumerate(instruments.sources)]
    sources += [f"percussion test {i}-{i + 2} in sequence" for i in range(0, n_hits, 3)]
    sources += [f"speech test {i} ({src})" for i, src in enumerate(speech.sources)]
    return DatasetSplit(waves, labels, ("no_speech", "speech"), rate, sources)


def run_silero(data_dir: str) -> Dict[str, Any]:
    """Evaluate the silero-vad wrapper on a held-out speech / no-speech set and write its card and clips."""
    from captum_freqrex.zoo._silero import SileroVADClassifier, AGGREGATION_NOTE

    model = SileroVADClassifier()
    rate, num_samples = model.sample_rate, model.num_samples
    instruments = load_split(data_dir, "instruments", "test")
    percussion = load_split(data_dir, "percussion", "test")
    split = silero_held_out(data_dir, rate, num_samples)
    n_speech = int(split.labels.sum())
    held_out = evaluate(model, split, 64)
    held_out["split"] = (f"{n_speech} held-out speech prompts (data/speech test) vs {len(split.labels) - n_speech} no-speech clips: "
                         "3 s crops at 0/10/20 s of the instruments test clips and 3 s sequences of three percussion test hits")
    held_out["command"] = ".venv/bin/python scripts/train_zoo.py silero-vad"
    os.makedirs(CLIPS, exist_ok=True)
    entries = []
    with open(os.path.join(WEIGHTS, "speech.json")) as handle:
        speech_card = json.load(handle)
    sources = [
        (c["file"], "speech", c["source"], c["licence"]) for c in speech_card["clips"][:3]
    ]
    piano = instruments.class_names.index("piano")
    row = int((instruments.labels == piano).nonzero()[0])
    name = "silero-vad_0_no_speech_piano.flac"
    _write_flac(os.path.join(CLIPS, name), instruments.waveforms[row, :num_samples], rate)
    sources.append((name, "no_speech", f"first 3 s of instruments test clip {row} ({instruments.sources[row]})",
                    f"{FLUID_LICENCE}. Melody generated by captum_freqrex."))
    name = "silero-vad_1_no_speech_drums.flac"
    rows = _choose_clips("percussion", percussion)[:3]  # the shipped kick, snare and hi-hat (CC-BY kit)
    drums = percussion.waveforms[rows].reshape(-1)[:num_samples]
    _write_flac(os.path.join(CLIPS, name), drums, rate)
    kits = sorted({percussion.sources[r].split("/")[0] for r in rows})
    sources.append((name, "no_speech", "three percussion test hits in sequence: " + ", ".join(percussion.sources[r] for r in rows),
                    "; ".join(f"{k} drum kit: {KIT_LICENCES.get(k, '')}" for k in kits) + ". Resampled, trimmed, faded, concatenated."))
    for file, label, source, licence in sources:
        wave = _read_flac(os.path.join(CLIPS, file))
        pred = split.class_names[int(predict(model, wave.unsqueeze(0), 1)[0])]
        entries.append({"file": file, "name": f"silero-vad: {label} ({source})", "label": label, "source": source,
                        "licence": licence, "predicted": pred, "correct": pred == label})
    card = {
        "name": "silero-vad",
        "task": "clip-level speech detection with the third-party Silero VAD",
        "class_names": ["no_speech", "speech"],
        "sample_rate": rate,
        "num_samples": num_samples,
        "model": "SileroVADClassifier",
        "third_party": {"package": "silero-vad", "version": _silero_version(), "weights": "silero_vad.jit from the silero-vad wheel",
                        "licence": "MIT (Silero Team)", "url": "https://github.com/snakers4/silero-vad"},
        "aggregation": AGGREGATION_NOTE,
        "outputs": "probabilities [no_speech, speech] (not logits)",
        "seed": None,
        "training": None,
        "held_out": held_out,
        "inference_ms_per_row": {"value": per_row_ms(model, num_samples),
                                 "setting": f"best of 5 calls, batch 32 of 3 s clips, 2 threads, torch {torch.__version__}, {platform.machine()}"},
        "licence": {"weights": "MIT (Silero Team), shipped in the silero-vad wheel, not here", "clips": "per clip"},
        "clips": entries,
        "clips_accuracy": round(sum(c["correct"] for c in entries) / len(entries), 4),
    }
    _write_card("silero-vad", card)
    print(f"silero-vad: held-out accuracy {held_out['accuracy']:.4f} (n={held_out['n']}), "
          f"{card['inference_ms_per_row']['value']} ms/row, shipped clips correct: {[c['correct'] for c in entries]}", flush=True)
    return card


_LICENCE_HEADER = """# Sample clips: sources, copyright and licences

Generated by `scripts/train_zoo.py` from the model cards in `../weights/*.json`. Every clip is a
held-out example (never seen in training), stored as 16-bit FLAC at 16 kHz, derived from the Debian
packages named below; the changes made are stated for each clip. The clips keep the licences of
their sources (share-alike where the source is CC-BY-SA); the model weights are BSD-3-Clause like
this project, except Silero VAD (MIT, shipped in the silero-vad wheel, not here).

## Sources

* **fluid-soundfont-gm** (instrument clips): FluidR3_GM SoundFont, Copyright (c) 2000-2002, 2008
  Frank Wen, (c) 2008 Toby Smithe; MIT licence. The melodies are generated by this project and
  rendered with fluidsynth.
* **asterisk-core-sounds-{en,es,fr,it,ru}-wav** (speech clips; /usr/share/doc/asterisk-core-sounds-en-wav/copyright):
  en, es: recorded by Allison Smith (theivrvoice.com), financed by Digium, Inc., CC-BY-SA 3.0;
  fr: June Wallack, translated by Clod Patry, Kristopher Lalletti and June Wallack, CC-BY-SA 3.0;
  it: Carlo Flora, translated by Silvia Petrin, CC-BY 3.0; ru: Maxim Topal (ivrvoice.ru), CC-BY 3.0.
* **hydrogen-drumkits** (/usr/share/doc/hydrogen-drumkits/copyright): the shipped percussion clips
  come from rumpf_kit_z01_h2 only; the other kits are training and test data. Per kit:
{kits}
* **sonic-pi-samples** (training data only): freesound.org samples placed under CC0, via Sonic Pi.

## Clips
"""


def write_licences_md() -> None:
    """Write ``clips/LICENSES.md`` from the cards: one line per shipped clip, and the sources."""
    kits = "\n".join(f"  * {kit}: {licence}" for kit, licence in sorted(KIT_LICENCES.items()) if kit != "sonic-pi")
    lines = [_LICENCE_HEADER.replace("{kits}", kits)]
    for name in [*TASKS, "silero-vad"]:
        path = os.path.join(WEIGHTS, f"{name}.json")
        if not os.path.exists(path) or "clips_from" in TASKS.get(name, {}):
            continue  # a model that reuses another's clips adds none
        with open(path) as handle:
            card = json.load(handle)
        lines.append(f"### {name}\n")
        for clip in card["clips"]:
            lines.append(f"* `{clip['file']}` (label: {clip['label']}): {clip['licence']}")
        lines.append("")
    with open(os.path.join(CLIPS, "LICENSES.md"), "w") as handle:
        handle.write("\n".join(lines))


def _silero_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("silero-vad")
    except Exception:  # pragma: no cover
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    names = [*TASKS, "silero-vad"]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", metavar="task", help=f"any of {', '.join(names)} (default: all, in this order)")
    parser.add_argument("--data", default=os.path.join(REPO, "data"), help="built datasets (default: data/)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--evaluate-only", action="store_true", help="re-evaluate the shipped weights, rewrite cards and clips")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in names]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    torch.set_num_threads(1)
    os.makedirs(WEIGHTS, exist_ok=True)
    for task in args.tasks or names:
        if task == "silero-vad":
            run_silero(args.data)
        else:
            run_task(task, args.data, args.seed, args.evaluate_only)
    write_licences_md()
    return 0


if __name__ == "__main__":
    sys.exit(main())

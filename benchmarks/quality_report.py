"""Collect the runs of benchmarks/quality.sh into quality.json and quality.png.

    python benchmarks/quality_report.py benchmarks/results/quality
"""
from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from specmix.app.plots import optional_plot  # noqa: E402
from specmix.io import atomic_write_text  # noqa: E402

MINUTES = (5, 10, 20, 30)


def summarize(run: pathlib.Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    cfg = json.loads((run / "config.json").read_text())
    t, m = cfg["train"], cfg["model"]
    per_step = t["batch_size"] * t.get("grad_accum", 1) * m["context"]

    def val_by(minute):          # the best evaluation within that many minutes of training
        if minute * 60 > rows[-1]["elapsed_s"] + 30:          # the run was shorter
            return None
        within = [r for r in rows if r["elapsed_s"] <= minute * 60 + 1]
        return min(r["val_loss"] for r in within) if within else None
    best = min(rows, key=lambda r: r["val_loss"])
    return {"run": run.name, **_model_summary(m),
            "shape": f"{m['n_layers']} x {m['d_model']}", "optimizer": t.get("optimizer", "adamw"),
            "schedule": t.get("schedule", "cosine"), "lr": t["lr"], "best_val": best["val_loss"],
            "best_step": best["step"], "best_minutes": best["elapsed_s"] / 60, "final_val": rows[-1]["val_loss"],
            "final_train": rows[-1]["train_loss"], "minutes": rows[-1]["elapsed_s"] / 60,
            "tokens_seen": rows[-1]["step"] * per_step, "tokens_per_s": rows[-1]["step"] * per_step / rows[-1]["elapsed_s"],
            "best_val_by_minute": {str(k): val_by(k) for k in MINUTES},
            "curve": [{"minutes": r["elapsed_s"] / 60, "val_loss": r["val_loss"], "train_loss": r["train_loss"]}
                      for r in rows], "corpus": t["data"]}


def _model_summary(m: dict) -> dict:
    """What the table says of a model: a specmix LM's mixers, or a transformers peer's family."""
    from specmix.app.peer_lm import PeerConfig, PeerLM, is_peer_record
    from specmix.model import LMConfig, SpecMixLM
    if is_peer_record(m):
        model = PeerLM(PeerConfig.from_dict(m))
        return {"mixers": [m["family"]], "filter": None, "pos_emb": None,
                "params": sum(p.numel() for p in model.parameters())}
    return {"mixers": m["mixers"], "filter": m.get("filter"), "pos_emb": m.get("pos_emb"),
            "params": SpecMixLM(LMConfig.from_dict(m)).num_params()}


def main(folder: str) -> int:
    out = pathlib.Path(folder)
    runs = [summarize(run) for run in sorted(out.iterdir()) if (run / "metrics.jsonl").exists()]
    report = {"runs": runs}
    atomic_write_text(out / "quality.json", json.dumps(report, indent=2) + "\n")
    optional_plot("plot_quality", report, str(out / "quality.png"))
    print(f"wrote {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))

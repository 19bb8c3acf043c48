"""Formatting and plotting of ``reference.json`` (NumPy/matplotlib only)."""
from __future__ import annotations


def format_report(r: dict) -> str:
    rows = [("initial loss (val)", r["initial_loss"]),
            ("final train loss", r["final_train_loss"]),
            ("final val loss (spectral)", r["final_val_loss"]),
            ("val loss without mixing (identity ablation)", r["no_mixing_val_loss"]),
            ("exact bigram val loss (add-1 counts on train)", r["bigram_val_loss"])]
    lines = ["| metric | nats/char |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in rows]
    cfg = r["config"]
    lines += ["", f"{r['steps']} steps, d_model {cfg['d_model']}, context {cfg['context']}, "
              f"batch {cfg['batch_size']}, corpus {r['corpus']}; both models trained in "
              f"{r['seconds']:.0f} s. Mixing gain: {r['no_mixing_val_loss'] - r['final_val_loss']:.3f} nats."]
    return "\n".join(lines)


def plot_reference(r: dict, path: str) -> None:
    from ..plots import _pyplot, save_figure
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = [p["step"] for p in r["loss_curve"]]
    ax.plot(steps, [p["train"] for p in r["loss_curve"]], "o-", label="spectral: train")
    ax.plot(steps, [p["val"] for p in r["loss_curve"]], "o-", label="spectral: val")
    ax.plot([p["step"] for p in r["no_mixing_curve"]], [p["val"] for p in r["no_mixing_curve"]],
            "s--", label="no mixing (identity): val")
    ax.axhline(r["bigram_val_loss"], color="gray", ls=":", label="exact bigram: val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.set_title("NumPy reference char LM")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)

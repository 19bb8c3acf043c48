"""The NumPy reference: torch-free, and its CLI end to end on a tiny corpus made here."""
import json
import subprocess
import sys

from specmix.app.cli import main


def test_reference_command_never_imports_torch(tmp_path):
    """`specmix reference --help` and a tiny `specmix reference` run, in a fresh interpreter."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabcabd " * 200)
    code = (
        "import sys\n"
        "from specmix.app.cli import main\n"
        "try:\n    main(['reference', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported by --help'\n"
        f"rc = main(['reference', '--data', {str(corpus)!r}, '--steps', '3', '--context', '8',"
        f" '--batch-size', '2', '--d-model', '8', '--eval-every', '2', '--eval-batches', '1',"
        f" '--out', {str(tmp_path / 'ref')!r}])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules, 'torch was imported by the run'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "ok"
    assert (tmp_path / "ref" / "reference.json").exists()


def test_reference_cli_writes_json_and_plot(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 300)
    out = tmp_path / "ref"
    rc = main(["reference", "--data", str(corpus), "--steps", "30", "--context", "16",
               "--batch-size", "8", "--d-model", "16", "--eval-every", "10", "--out", str(out)])
    assert rc == 0
    r = json.loads((out / "reference.json").read_text())
    for key in ("steps", "initial_loss", "final_train_loss", "final_val_loss", "bigram_val_loss",
                "no_mixing_val_loss", "seconds", "loss_curve"):
        assert key in r
    assert r["steps"] == 30 and [p["step"] for p in r["loss_curve"]] == [0, 10, 20, 30]
    assert r["final_val_loss"] < r["initial_loss"]
    assert (out / "reference_loss.png").stat().st_size > 1000
    assert "final val loss" in capsys.readouterr().out


def test_reference_cli_bad_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["reference", "--data", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and len(err.splitlines()) == 1
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\xff\xfe\x00abc")
    assert main(["reference", "--data", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["reference", "--data", str(bad), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert main(["reference", "--dtype", "float16"]) == 2
    assert "argument --dtype: invalid choice" in capsys.readouterr().err


def test_bigram_loss_is_exact():
    import numpy as np

    from specmix.app.reference_run import bigram_loss
    train = np.array([0, 1, 0, 1, 0, 0])
    val = np.array([0, 1, 1])
    # add-1 counts: from 0: ->0: 1+1, ->1: 1+2 ; from 1: ->0: 1+2, ->1: 1+0
    expected = -(np.log(3 / 5) + np.log(1 / 4)) / 2
    assert abs(bigram_loss(train, val, 2) - expected) < 1e-12

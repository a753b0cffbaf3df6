"""Examples shown at the end of every sub-command's ``--help`` (standard library only).

:data:`EXAMPLES` maps a command path (``"run"``, ``"activations list"``) to its example lines;
:func:`add_examples` puts them into each parser's epilog after every group has registered.
"""

from __future__ import annotations

import argparse

_YAML = "studies/sinter_amplitude.yaml"

#: ``{command path: [example command line, …]}``; a ``# …`` tail explains the line.
EXAMPLES: dict[str, list[str]] = {
    "activations": [
        "loran-search activations list --family sinter",
        "loran-search activations audit sinter --set sinter.amplitude=0.01",
    ],
    "activations list": [
        "loran-search activations list",
        "loran-search activations list --pattern 'sinter*' --format json",
    ],
    "activations audit": [
        "loran-search activations audit sinter sinter_tanh",
        "loran-search activations audit --expr 'x + 0.1*x*sin(10*x)' --interval=-2,2",
    ],
    "activations plot": [
        "loran-search activations plot sinter gelu --out f.png",
        "loran-search activations plot sinter --set sinter.amplitude=0.1 --out sinter.png",
    ],
    "activations export": [
        "loran-search activations export studies/form_search.yaml --top 3 --out my_forms.py",
    ],
    "assets": ["loran-search assets list", "loran-search assets fetch smollm2-135m"],
    "assets list": ["loran-search assets list", "loran-search assets list --format json"],
    "assets fetch": [
        "loran-search assets fetch            # every embedded model and dataset",
        "loran-search assets fetch bbc-news --force",
    ],
    "train": [
        f"loran-search train {_YAML} --set training.max_steps=20",
        f"loran-search train {_YAML} --seed 1 --save-adapter out/adapter --format json",
    ],
    "run": [
        f"loran-search run {_YAML}                 # create or resume, then report",
        f"loran-search run {_YAML} --n-trials 4 --no-confirm",
        f"loran-search run {_YAML} --storage postgresql://user:pw@db/loran",
    ],
    "worker": [
        f"loran-search worker {_YAML} --storage postgresql://user:pw@db/loran",
        "# one worker per GPU on a multi-GPU machine:",
        f"CUDA_VISIBLE_DEVICES=0 loran-search worker {_YAML} --storage URL &",
        f"CUDA_VISIBLE_DEVICES=1 loran-search worker {_YAML} --storage URL &",
    ],
    "confirm": [
        f"loran-search confirm {_YAML}",
        f"loran-search confirm {_YAML} --top-k 3 --seeds 100 101 102",
    ],
    "tune": [
        f"loran-search tune {_YAML} --set "
        "'study.tune={training.learning_rate: [3.0e-4, 1.0e-3, 3.0e-3]}'",
        "loran-search tune studies/rank_sweep.yaml --storage postgresql://user@host/db",
    ],
    "validate": [
        f"loran-search validate {_YAML}",
        "loran-search validate studies/*.yaml --set study.n_trials=4",
    ],
    "dashboard": [
        f"loran-search dashboard {_YAML}",
        "loran-search dashboard --storage sqlite:///studies/sinter_amplitude.db --port 8081",
        f"loran-search dashboard {_YAML} --host 0.0.0.0   # reachable from other machines",
    ],
    "report": [
        f"loran-search report {_YAML}              # reports/<study>/report.html",
        "loran-search report --storage sqlite:///s.db --study NAME --format csv --out out/",
    ],
    "bench": ["loran-search bench adapter --quick", "loran-search bench kinds --repeats 5"],
    "bench adapter": ["loran-search bench adapter", "loran-search bench adapter --quick"],
    "bench kinds": ["loran-search bench kinds --repeats 5 --format json"],
    "bench storage": [
        "loran-search bench storage --trials 100",
        "loran-search bench storage --storage sqlite:///a.db --storage postgresql://u:p@h/db",
    ],
    "env": [
        "loran-search env                  # paste the output into a bug report",
        "loran-search env --format json    # the fields of a trial's `environment` user attr",
        "loran-search env --torch          # also torch's threads, deterministic setting, device",
    ],
}


def subcommands(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """``[(command path, parser), …]`` of every sub-command under ``parser``, depth first."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{path} {name}".strip()
                out.append((full, sub))
                out += subcommands(sub, full)
    return out


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command with examples an ``examples:`` epilog (layout kept as written)."""
    for path, sub in subcommands(parser):
        lines = EXAMPLES.get(path)
        if not lines:
            continue
        sub.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter

"""Command-line spellings our entry points accept before Hydra sees them (Hydra takes `key=value` only):

alias_model_override(["model=best.pt", "gate=cls.onnx"])   # ["weights=best.pt", "gate.model=cls.onnx"]
positional_to_overrides(["A", "B", "split=val"])          # ["a=A", "b=B", "split=val"]  (compare)
alias_tune_override(["tune=true"])                         # ["tuning=true"]              (ensemble)
"""

from __future__ import annotations


def alias_model_override(args: list[str]) -> list[str]:
    """`model=X` -> `weights=X` (xray_exp/conf/model/ is a config group: Hydra would read `model=` as its choice);
    `gate=X` -> `gate.model=X` (the classifier of the gate; gate.low, gate.high ... are its settings)."""
    return [f"weights={a[len('model=') :]}" if a.startswith("model=") else alias_gate_override(a) for a in args]


def alias_gate_override(arg: str) -> str:
    return f"gate.model={arg[len('gate=') :]}" if arg.startswith("gate=") else arg


HYDRA_FLAGS_WITH_VALUE = (
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
)


def positional_to_overrides(args: list[str]) -> list[str]:
    """`A B key=value ...` -> `a=A b=B key=value ...` (Hydra takes key=value only; its flags pass through)."""
    out, slots = [], [s for s in ("a", "b") if not any(arg.startswith(f"{s}=") for arg in args)]
    for i, arg in enumerate(args):
        flag_value = i > 0 and args[i - 1] in HYDRA_FLAGS_WITH_VALUE
        if "=" not in arg and not arg.startswith("-") and not flag_value and slots:
            out.append(f"{slots.pop(0)}={arg}")
        else:
            out.append(arg)
    return out


def alias_tune_override(args: list[str]) -> list[str]:
    """`tune=X` -> `tuning=X` (xray_exp/conf/tune/ is Ray Tune's config group: Hydra would read it as its choice);
    `gate=X` -> `gate.model=X` (as evaluate and compare)."""
    return [f"tuning={a[len('tune=') :]}" if a.startswith("tune=") else alias_gate_override(a) for a in args]

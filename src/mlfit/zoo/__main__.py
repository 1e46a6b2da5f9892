"""``python -m mlfit.zoo DIR``: write the example and benchmark models into DIR."""

from __future__ import annotations

import sys
from pathlib import Path

from mlfit.zoo import builders


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("examples/models")
    made = {
        "mobilenet_v2_example.onnx": builders.example_model,
        "tiny_add.onnx": builders.tiny_add,
    }
    for name, build in made.items():
        path = out / name
        if not path.exists():
            builders.save(build(), path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Regenerate the committed Python code of the protos under serving/_proto.

Run ``python protos/generate.py`` after changing a .proto file, with the grpcio-tools
of the dev extra. The generated modules check the protobuf runtime at import: keep the
``protobuf`` constraint of pyproject.toml at the "Protobuf Python Version" they name.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUT_ROOT = PROTO_ROOT.parent / "serving" / "_proto"
PROTO_FILES = ("recsearch/v1/recommender.proto",)
# grpc_tools writes imports that start at the proto package ("from recsearch.v1 import"),
# which would resolve to the recsearch Python package; they are rewritten to this package.
IMPORT_PREFIX = "serving._proto."


def main() -> int:
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={OUT_ROOT}",
                f"--pyi_out={OUT_ROOT}",
                f"--grpc_python_out={OUT_ROOT}",
                str(PROTO_ROOT / proto),
            ]
        )
        if status != 0:
            print(f"protoc failed on {proto} with status {status}", file=sys.stderr)
            return status

    for path in OUT_ROOT.rglob("*_pb2*.py*"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^from recsearch\.", f"from {IMPORT_PREFIX}recsearch.", text, flags=re.MULTILINE)
        path.write_text(text, encoding="utf-8")
    for folder in [OUT_ROOT, *[p for p in OUT_ROOT.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())

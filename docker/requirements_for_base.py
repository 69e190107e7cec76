"""Requirements for an image whose base already ships some of them (NVIDIA's PyTorch image).

    python docker/requirements_for_base.py requirements/trainer.txt > /tmp/requirements.txt

Leaves out torch and every package the base image pins in its pip constraint files ($PIP_CONSTRAINT;
NGC images set /etc/pip/constraint.txt): those stay at the versions the base image was built and tested
with (CUDA builds, the numpy its compiled packages expect), and pip keeps honouring the constraints for
everything it installs. What is left out is reported on stderr, so the build log shows where the image
differs from requirements/.
"""

import os
import re
import sys
from pathlib import Path

ALWAYS_FROM_BASE = {"torch"}


def package_name(requirement: str) -> str:
    """PEP 503 normalized name of a requirement line ('' for comments, blanks and options)."""
    line = requirement.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return ""
    name = re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def base_pins(constraint_files: str) -> set[str]:
    names = set()
    for path in constraint_files.split():
        if Path(path).is_file():
            names |= {package_name(line) for line in Path(path).read_text().splitlines()} - {""}
    return names


def filter_requirements(lines: list[str], from_base: set[str]) -> tuple[list[str], list[str]]:
    kept, left_out = [], []
    for line in lines:
        name = package_name(line)
        if name and name in from_base:
            left_out.append(line.split("#", 1)[0].strip())
        elif name:
            kept.append(line.split("#", 1)[0].strip())
    return kept, left_out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    from_base = ALWAYS_FROM_BASE | base_pins(os.environ.get("PIP_CONSTRAINT", ""))
    kept, left_out = filter_requirements(Path(argv[1]).read_text().splitlines(), from_base)
    for line in left_out:
        print(f"from the base image instead: {line}", file=sys.stderr)
    print("\n".join(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

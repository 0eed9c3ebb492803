#!/usr/bin/env bash
# Run the vaepriors DAG through profiles/slurm on a real, private, single-node SLURM cluster.
#
#   tests/slurm/run_slurm_test.sh [--toy | --kill] [--keep] [SNAKEMAKE_ARGS...]
#
#   --toy    run the toy DAG in tests/slurm/toy (about a minute): checks SLURM and the profile
#            without the real pipeline. Same as VAEPRIORS_SLURM_TEST=toy.
#   --kill   the kill campaign's SLURM leg (tests/faults/campaign.py --engine slurm) on this
#            cluster: SLURM_TEST_KILL_POINTS kills (default 2, seed SLURM_TEST_KILL_SEED, 0), each
#            SIGKILL to the submitting Snakemake and scancel of its jobs, resumed and compared.
#   --keep   keep the temporary directory (configs, daemon logs, workdir) after a success.
#   SNAKEMAKE_ARGS are appended to the snakemake call (default target: all).
#
# Needs root on Debian/Ubuntu (apt). It installs slurm-wlm and munge if missing, writes a
# slurm.conf for this machine (hostname -s, nproc, free -m) with accounting off, starts munged
# (unless one already answers), slurmctld and slurmd, runs
#   snakemake --profile profiles/slurm --configfile profiles/quick/params.yaml
# in a fresh copy of the working tree, checks every output the dry run planned, and checks that
# every non-local job went through SLURM (one SLURM log per job, slurmctld saw it complete).
# The daemons it started are stopped by PID on exit, failure included. If SLURM cannot be set up
# it fails (exit 1) with a message; it never skips.
#
# Environment: VAEPRIORS_SLURM_TEST=toy|quick, SLURM_TEST_PROCTRACK=linuxproc|pgid|cgroup
# (default linuxproc), SLURM_TEST_PARTITION (default debug), SLURM_TEST_CTLD_PORT /
# SLURM_TEST_SLURMD_PORT (default 6817 / 6818), SLURM_TEST_TIMEOUT (seconds for the snakemake
# run, default 1800), SNAKEMAKE (default: the repo's .venv/bin/snakemake, else snakemake on PATH).
set -euo pipefail

T0=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODE=${VAEPRIORS_SLURM_TEST:-quick}
KEEP=0
EXTRA=()
for arg in "$@"; do
    case "$arg" in
        --toy) MODE=toy ;;
        --kill) MODE=kill ;;
        --quick) MODE=quick ;;
        --keep) KEEP=1 ;;
        *) EXTRA+=("$arg") ;;
    esac
done
PROCTRACK=${SLURM_TEST_PROCTRACK:-linuxproc}
PARTITION=${SLURM_TEST_PARTITION:-debug}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-6818}
RUN_TIMEOUT=${SLURM_TEST_TIMEOUT:-1800}

log() { printf '[slurm-test %3ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() {
    printf '\nSLURM TEST FAILED: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts SLURM daemons)"
[[ $MODE == toy || $MODE == quick || $MODE == kill ]] || die "unknown mode '$MODE' (toy, quick or kill)"
if [[ -z ${SNAKEMAKE:-} ]]; then
    if [[ -x $REPO/.venv/bin/snakemake ]]; then SNAKEMAKE=$REPO/.venv/bin/snakemake
    else SNAKEMAKE=$(command -v snakemake) || die "no snakemake (make the venv: pip install -e '.[slurm]')"
    fi
fi
# Jobs run `python -m snakemake` with the submitting environment (sbatch --export=ALL).
export PATH="$(dirname "$SNAKEMAKE"):$PATH"
"$SNAKEMAKE" --help 2>/dev/null | grep -q -- '--slurm-status-command' \
    || die "snakemake-executor-plugin-slurm is not installed for $SNAKEMAKE (pip install -e '.[slurm]')"

WORK=$(mktemp -d /tmp/vaepriors-slurm.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK"/{state,spool,log}
export SLURM_CONF=$WORK/slurm.conf
# Private cluster only: drop any SLURM settings inherited from a surrounding job/cluster.
unset SLURM_JOB_ID SLURM_JOBID SBATCH_PARTITION SBATCH_ACCOUNT SLURM_PARTITION SLURM_ACCOUNT || true
RUN_SLURM_EXISTED=0
[[ -d /run/slurm ]] && RUN_SLURM_EXISTED=1
PIDS=()       # daemons this script started, in start order
PID_NAMES=()
STATUS=1

cleanup() {
    local rc=$?
    set +e
    if [[ -n ${SMK_PID:-} ]] && kill -0 "$SMK_PID" 2>/dev/null; then
        log "stopping snakemake (pid $SMK_PID); it cancels its SLURM jobs"
        kill -TERM "$SMK_PID"
        for _ in $(seq 60); do kill -0 "$SMK_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SMK_PID" 2>/dev/null
        wait "$SMK_PID" 2>/dev/null
    fi
    if ((${#PIDS[@]})) && [[ -n ${CTLD_PID:-} ]] && kill -0 "$CTLD_PID" 2>/dev/null; then
        # Jobs still queued or running (a failed run): cancel them so no slurmstepd is left.
        if [[ -n $(squeue -h -t PD,R,CG -o %i 2>/dev/null) ]]; then
            log "cancelling leftover jobs: $(squeue -h -t PD,R,CG -o %i | tr '\n' ' ')"
            scancel --full $(squeue -h -t PD,R,CG -o %i) 2>/dev/null
            for _ in $(seq 20); do
                [[ -z $(squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "${PID_NAMES[i]} (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        log "stopped ${PID_NAMES[i]} (pid $pid)"
    done
    # configless slurmd links its config cache at /run/slurm/conf: remove the link it left.
    if [[ -L /run/slurm/conf && $(readlink /run/slurm/conf) == "$WORK"/* ]]; then
        rm -f /run/slurm/conf
        ((RUN_SLURM_EXISTED)) || rmdir /run/slurm 2>/dev/null
    fi
    # proctrack/cgroup leaves an empty freezer hierarchy behind.
    if [[ $PROCTRACK == cgroup && -n ${CGROUP_DIR:-} && -d $CGROUP_DIR ]] && ((!CGROUP_EXISTED)); then
        find "$CGROUP_DIR" -depth -type d -exec rmdir {} + 2>/dev/null
    fi
    if [[ $rc -ne 0 || $STATUS -ne 0 ]]; then
        for f in "$WORK"/log/slurmctld.log "$WORK"/log/slurmd.log; do
            [[ -s $f ]] && { echo "--- last lines of $f" >&2; tail -n 25 "$f" >&2; }
        done
        echo "SLURM test files kept in $WORK" >&2
        [[ $rc -eq 0 ]] && rc=1
    elif ((KEEP)); then
        log "files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. install
T_INSTALL=$(date +%s)
need_install() {
    local b
    for b in slurmctld slurmd sbatch squeue sinfo scontrol munged munge; do
        command -v "$b" >/dev/null || return 0
    done
    return 1
}
if need_install; then
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
    log "installing slurm-wlm and munge with apt-get"
    # Keep the packages' init scripts from starting system daemons: this script runs its own.
    POLICY_CREATED=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_CREATED=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    rc=0
    { apt-get install -y -q --no-install-recommends slurm-wlm munge >"$WORK/log/apt.log" 2>&1 \
        || { apt-get update -q >>"$WORK/log/apt.log" 2>&1 \
             && apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$WORK/log/apt.log" 2>&1; }; } \
        || rc=$?
    ((POLICY_CREATED)) && rm -f /usr/sbin/policy-rc.d
    if ((rc)); then tail -n 20 "$WORK/log/apt.log" >&2; die "apt-get install slurm-wlm munge failed"; fi
    need_install && die "slurm-wlm/munge installed but binaries are missing from PATH"
fi
log "$(slurmd -V 2>&1 | head -1), $(munged --version 2>&1 | awk '{print $1; exit}') installed ($(($(date +%s) - T_INSTALL))s)"

# ---------------------------------------------------------------- 2. configure + start
T_START=$(date +%s)
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/ {print $2}')
REALMEM=$((MEM_TOTAL * 95 / 100 - 256))   # a bit below what the kernel reports
((REALMEM > 500)) || die "too little memory for the test cluster (free -m: ${MEM_TOTAL} MB)"
getent hosts "$HOST" >/dev/null || die "hostname '$HOST' does not resolve (add it to /etc/hosts)"

cat > "$SLURM_CONF" <<EOF
# Single-node test cluster written by tests/slurm/run_slurm_test.sh
ClusterName=vaepriors-test
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No accounting: no slurmdbd, so the executor plugin must read job states from squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue keeps finished jobs this long; the plugin needs >= 3 x its first status-check delay.
MinJobAge=600
SlurmdParameters=config_overrides
# Configless: slurmd fetches this file from slurmctld and links it at /run/slurm/conf, where
# srun inside a job finds it (the jobstep plugin drops SLURM_CONF from the job's environment).
SlurmctldParameters=enable_configless
NodeName=$HOST CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
CGROUP_DIR=/sys/fs/cgroup/freezer/slurm_$HOST
CGROUP_EXISTED=0
[[ -d $CGROUP_DIR ]] && CGROUP_EXISTED=1
if [[ $PROCTRACK == cgroup ]]; then
    cat > "$WORK/cgroup.conf" <<EOF
CgroupPlugin=autodetect
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=no
EOF
fi

start_daemon() {  # name, command...: start in the foreground mode, in the background
    local name=$1
    shift
    "$@" >"$WORK/log/$name.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID_NAMES+=("$name")
    sleep 0.5
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$WORK/log/$name.out" >&2
        die "$name exited right after starting (see above)"
    fi
    log "started $name (pid $pid)"
}

# munge: reuse a munged that already answers on the default socket, else start one.
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running; using it"
else
    KEY=/etc/munge/munge.key
    if [[ ! -s $KEY ]]; then
        log "creating munge key $KEY"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --keyfile="$KEY" --force
        else dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none
        fi
    fi
    MUNGE_USER=root
    id munge >/dev/null 2>&1 && MUNGE_USER=munge
    chown "$MUNGE_USER": "$KEY"
    chmod 400 "$KEY"
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown "$MUNGE_USER": /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if [[ $MUNGE_USER == root ]]; then
        start_daemon munged munged --foreground --force --key-file="$KEY"
    else
        start_daemon munged setpriv --reuid=munge --regid=munge --init-groups -- \
            munged --foreground --key-file="$KEY"
    fi
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
    munge -n | unmunge >/dev/null || die "munged does not answer (see $WORK/log/munged.out)"
fi

start_daemon slurmctld slurmctld -D -i -f "$SLURM_CONF"
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || die "slurmctld does not answer scontrol ping"
CTLD_PID=${PIDS[-1]}
[[ -e /run/slurm/conf ]] && die "/run/slurm/conf exists: another slurmd seems to run on this machine"
start_daemon slurmd slurmd -D --conf-server "$HOST:$CTLD_PORT"

state=""
for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1)
    [[ $state == idle ]] && break
    sleep 0.5
done
if [[ $state != idle ]]; then
    sinfo -N -l >&2 || true
    scontrol show node "$HOST" >&2 || true
    die "node $HOST did not become idle (state: '${state:-none}')"
fi
# One real job step before Snakemake: fails fast and clearly if jobs cannot launch.
timeout 60 srun --quiet -n1 -t 1 true || die "a trivial srun job failed on the test cluster"
T_UP=$(date +%s)
log "SLURM up: node $HOST idle, $CPUS CPUs, ${REALMEM} MB, partition $PARTITION, proctrack/$PROCTRACK ($((T_UP - T_START))s to configure and start; install+start $((T_UP - T_INSTALL))s)"

# ---------------------------------------------------------------- 3. run the DAG
if [[ $MODE == kill ]]; then
    log "kill campaign through SLURM: ${SLURM_TEST_KILL_POINTS:-2} kill(s)"
    rc=0
    "$(dirname "$SNAKEMAKE")/python" "$REPO/tests/faults/campaign.py" --engine slurm \
        --points "${SLURM_TEST_KILL_POINTS:-2}" --seed "${SLURM_TEST_KILL_SEED:-0}" \
        --workdir "$WORK/campaign" --report "$WORK/faults-slurm.md" || rc=$?
    ((rc == 0)) || die "the SLURM kill campaign failed (exit $rc; report $WORK/faults-slurm.md)"
    mkdir -p "$REPO/results" && cp "$WORK/faults-slurm.md" "$REPO/results/faults-slurm.md"
    STATUS=0
    log "SLURM kill campaign passed in $(($(date +%s) - T0))s"
    exit 0
fi
if [[ $MODE == toy ]]; then
    WD=$WORK/toy
    mkdir -p "$WD"
    SMK_ARGS=(--snakefile "$REPO/tests/slurm/toy/Snakefile" --directory "$WD")
else
    # A fresh copy of the working tree (tracked and untracked-but-not-ignored files), so every
    # job runs here, through SLURM, and the repository's own data/ and results/ are untouched.
    WD=$WORK/repo
    mkdir -p "$WD"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
            | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
            | tar --null -T - -cf -) | tar -C "$WD" -xf -
    else
        tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./.snakemake \
            --exclude=./data --exclude=./results -cf - . | tar -C "$WD" -xf -
    fi
    SMK_ARGS=(--snakefile "$WD/Snakefile" --directory "$WD" --configfile "$WD/profiles/quick/params.yaml")
    # The jobs import this snapshot's package, not whatever the venv's editable install points at.
    export PYTHONPATH="$WD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
cd "$WD"

# The plan, before running: every output (and log) file of the DAG.
"$SNAKEMAKE" "${SMK_ARGS[@]}" --dry-run --summary "${EXTRA[@]}" >"$WORK/summary.tsv" 2>"$WORK/log/summary.err" \
    || { cat "$WORK/log/summary.err" >&2; die "dry run (--summary) of the DAG failed"; }
# Table after its header line: output_file, date, rule, log-file(s), status, plan.
awk -F'\t' 'h && $1 != "" {print $1} h && $4 != "-" && $4 != "" {n = split($4, a, ", "); for (i = 1; i <= n; i++) print a[i]}
    $1 == "output_file" && $3 == "rule" {h = 1}' "$WORK/summary.tsv" | sort -u >"$WORK/expected_files.txt"
N_EXPECTED=$(wc -l <"$WORK/expected_files.txt")
((N_EXPECTED > 0)) || die "the dry run planned no output files"
log "DAG plans $N_EXPECTED files; running it through SLURM ($MODE)"

T_RUN=$(date +%s)
rc=0
# In the background + wait, so that a signal to this script is handled at once (cleanup below).
timeout "$RUN_TIMEOUT" "$SNAKEMAKE" --profile "$REPO/profiles/slurm" "${SMK_ARGS[@]}" \
    --slurm-keep-successful-logs --slurm-init-seconds-before-status-checks 5 \
    "${EXTRA[@]}" >"$WORK/log/snakemake.log" 2>&1 &
SMK_PID=$!
wait "$SMK_PID" || rc=$?
SMK_PID=
T_RAN=$(date +%s)
if ((rc)); then
    tail -n 60 "$WORK/log/snakemake.log" >&2
    ((rc == 124)) && die "snakemake did not finish within ${RUN_TIMEOUT}s"
    die "snakemake --profile profiles/slurm exited with $rc (log: $WORK/log/snakemake.log)"
fi
log "snakemake finished in $((T_RAN - T_RUN))s"

# ---------------------------------------------------------------- 4. checks
missing=0
while IFS= read -r f; do
    [[ -e $f ]] || { echo "missing output: $f" >&2; missing=$((missing + 1)); }
done <"$WORK/expected_files.txt"
((missing == 0)) || die "$missing of $N_EXPECTED planned files are missing"
log "all $N_EXPECTED planned files exist"

# Jobs Snakemake ran: "rule NAME:" blocks were submitted to SLURM, "localrule NAME:" ran here.
# The plugin logs each submission as "Job J has been submitted with SLURM jobid S (log: PATH)."
"$(dirname "$SNAKEMAKE")/python" - "$WORK/log/snakemake.log" "$WD/.snakemake/slurm_logs" \
    "$WORK/log/slurmctld.log" "$WORK/summary.tsv" <<'PY' || die "the jobs did not all go through SLURM (see above)"
import re
import sys
from collections import Counter
from pathlib import Path

smk_log, slurm_logs, ctld_log, summary = (Path(a) for a in sys.argv[1:])
text = smk_log.read_text()
remote, local = {}, Counter()  # remote: snakemake jobid -> rule
for is_local, rule, body in re.findall(r"^(local)?rule (\w+):\n((?:    .*\n)*)", text, flags=re.M):
    if is_local:
        local[rule] += 1
    else:
        remote[re.search(r"^    jobid: (\d+)$", body, flags=re.M).group(1)] = rule
submitted = {
    j: (sid, Path(log))
    for j, sid, log in re.findall(
        r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", text, flags=re.M
    )
}
ctld = ctld_log.read_text()
errors = []
if not remote:
    errors.append("no job was submitted to SLURM")
if set(remote) != set(submitted):
    errors.append(f"snakemake jobs {sorted(set(remote) ^ set(submitted))} not both run and submitted")
for jobid, rule in sorted(remote.items(), key=lambda kv: int(kv[0])):
    if jobid not in submitted:
        continue
    sid, log = submitted[jobid]
    if not log.is_file():
        errors.append(f"rule {rule} (SLURM job {sid}): no SLURM log {log}")
    elif log.resolve().relative_to(slurm_logs.resolve()).parts[0] != f"rule_{rule}":
        errors.append(f"SLURM log {log} is not under {slurm_logs}/rule_{rule}/")
    if not re.search(rf"_job_complete: JobId={sid} WEXITSTATUS 0$", ctld, flags=re.M):
        errors.append(f"slurmctld never logged SLURM job {sid} ({rule}) as exiting with 0")
n_logs = sum(1 for _ in slurm_logs.glob("**/*.log"))
if n_logs != len(remote):
    errors.append(f"{n_logs} SLURM logs under {slurm_logs} for {len(remote)} submitted jobs")
# Every rule the dry run planned ran (through SLURM, or here for action-less/local rules).
rows = summary.read_text().split("output_file\tdate\trule\t", 1)[1].splitlines()[1:]
planned = {row.split("\t")[2] for row in rows if row.count("\t") >= 2}
ran = Counter(remote.values()) + local
errors += [f"rule {r} was planned but never ran" for r in sorted(planned - set(ran))]
per_rule = ", ".join(f"{r}={n}" for r, n in sorted(Counter(remote.values()).items()))
print(f"SLURM jobs: {len(remote)} ({per_rule}); SLURM logs: {n_logs}; "
      f"local jobs: {sum(local.values())} ({', '.join(sorted(local))})", file=sys.stderr)
for e in errors:
    print("ERROR:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

if [[ $MODE == toy ]]; then
    # The toy jobs wrote $SLURM_JOB_ID into their outputs (they fail outside SLURM).
    grep -q 'aggregate job=[0-9]' "$WD/toy/summary.txt" || die "toy output lacks SLURM job ids"
fi
[[ -z $(squeue -h -t PD,R,CG -o %i) ]] || die "jobs still queued or running after snakemake finished"

STATUS=0
log "PASS ($MODE): install+start $((T_UP - T_INSTALL))s, snakemake run $((T_RAN - T_RUN))s, total $(($(date +%s) - T0))s"
